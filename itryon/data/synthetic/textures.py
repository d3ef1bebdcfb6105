"""The garment texture bank: procedural patterns evaluated on garment (u, v) coordinates.

A texture is a pattern (stripes, checks, dots, gradient, noise, logo) and a numbered variant that fixes
its geometry; variants are dealt to splits (see :mod:`.splits`), so ``texture_id`` never repeats across
splits. Evaluating on coordinates instead of sampling an image keeps the texture sharp under the
garment's warp and needs no gather.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from .palette import garment_colour
from .splits import GLYPH_LETTERS, texture_variants

F32 = np.float32
PATTERNS = ("stripes", "checks", "dots", "gradient", "noise", "logo")

_GLYPH_ROWS = {
    "A": ".###.|#...#|#####|#...#|#...#",
    "C": ".####|#....|#....|#....|.####",
    "E": "#####|#....|####.|#....|#####",
    "F": "#####|#....|####.|#....|#....",
    "H": "#...#|#...#|#####|#...#|#...#",
    "I": "#####|..#..|..#..|..#..|#####",
    "K": "#...#|#..#.|###..|#..#.|#...#",
    "L": "#....|#....|#....|#....|#####",
    "M": "#...#|##.##|#.#.#|#...#|#...#",
    "N": "#...#|##..#|#.#.#|#..##|#...#",
    "O": ".###.|#...#|#...#|#...#|.###.",
    "P": "####.|#...#|####.|#....|#....",
    "S": ".####|#....|.###.|....#|####.",
    "T": "#####|..#..|..#..|..#..|..#..",
    "U": "#...#|#...#|#...#|#...#|.###.",
    "V": "#...#|#...#|#...#|.#.#.|..#..",
    "X": "#...#|.#.#.|..#..|.#.#.|#...#",
    "Z": "#####|...#.|..#..|.#...|#####",
}


def glyph(letter: str) -> np.ndarray:
    """5x5 float32 bitmap of ``letter`` (row 0 at the top)."""
    if letter not in _GLYPH_ROWS:
        raise KeyError(f"no glyph for {letter!r}; available: {''.join(sorted(_GLYPH_ROWS))}")
    return np.array([[ch == "#" for ch in row] for row in _GLYPH_ROWS[letter].split("|")], dtype=F32)


@dataclass(frozen=True)
class TextureSpec:
    pattern: str
    variant: int
    colour_a: tuple[float, float, float]
    colour_b: tuple[float, float, float]
    sectors: tuple[int, int]  # hue sectors of the two colours (the palette)
    params: tuple[float, ...]

    @property
    def texture_id(self) -> str:
        return f"{self.pattern}-{self.variant:02d}"

    @property
    def letter(self) -> str:
        return GLYPH_LETTERS[self.variant % len(GLYPH_LETTERS)]

    def describe(self) -> str:
        return {
            "stripes": "striped",
            "checks": "checked",
            "dots": "polka-dot",
            "gradient": "gradient",
            "noise": "mottled",
            "logo": f"'{self.letter}' logo",
        }[self.pattern]

    def mix(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Share of ``colour_b`` in [0, 1] at garment coordinates ``(u, v)``."""
        p = self.params
        if self.pattern == "stripes":  # angle, period, duty
            t = (u * F32(p[0]) + v * F32(p[1])) / F32(p[2])
            return (t - np.floor(t) < F32(p[3])).astype(F32)
        if self.pattern == "checks":  # rotation (cos, sin), period
            a = (u * F32(p[0]) - v * F32(p[1])) / F32(p[2])
            b = (u * F32(p[1]) + v * F32(p[0])) / F32(p[2])
            s = np.floor(a) + np.floor(b)
            return s - F32(2.0) * np.floor(s * F32(0.5))
        if self.pattern == "dots":  # period, radius (fraction of period), row stagger
            row = np.floor(v / F32(p[0]))
            a = u / F32(p[0]) + row * F32(p[2])
            fx = a - np.floor(a) - F32(0.5)
            fy = v / F32(p[0]) - row - F32(0.5)
            return (fx * fx + fy * fy < F32(p[1] * p[1])).astype(F32)
        if self.pattern == "gradient":  # direction (cos, sin), span
            return np.clip((u * F32(p[0]) + v * F32(p[1])) / F32(p[2]) + F32(0.5), F32(0.0), F32(1.0))
        if self.pattern == "noise":  # three triangle waves: (cos, sin, frequency, phase) x 3, contrast
            total = np.zeros(np.broadcast_shapes(np.shape(u), np.shape(v)), dtype=F32)
            for k in range(3):
                c, s, f, ph = p[4 * k : 4 * k + 4]
                t = (u * F32(c) + v * F32(s)) * F32(f) + F32(ph)
                total += np.abs(t - np.floor(t) - F32(0.5))
            return np.clip((total * F32(2.0 / 3.0) - F32(0.5)) * F32(p[12]) + F32(0.5), F32(0.0), F32(1.0))
        if self.pattern == "logo":  # letter cell size, centre y
            cell = F32(p[0])
            ix = np.floor(u / cell + F32(2.5))
            iy = np.floor((v - F32(p[1])) / cell + F32(2.5))
            inside = (ix >= 0) & (ix < 5) & (iy >= 0) & (iy < 5)
            index = (np.clip(iy, 0, 4) * 5 + np.clip(ix, 0, 4)).astype(np.intp)
            return glyph(self.letter).ravel()[index] * inside
        raise ValueError(f"unknown texture pattern {self.pattern!r}; expected one of {list(PATTERNS)}")

    def colour(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """RGB ``(3, ...)`` (channels first) float32 in [0, 1] at garment coordinates."""
        m = self.mix(u, v)
        lead = (3,) + (1,) * m.ndim
        first = np.array(self.colour_a, dtype=F32).reshape(lead)
        step = np.array([b - a for a, b in zip(self.colour_a, self.colour_b)], dtype=F32).reshape(lead)
        return first + m * step


def _variant_params(pattern: str, variant: int) -> tuple[float, ...]:
    """The geometry of texture ``(pattern, variant)``: fixed by the pair, the same in every clip and split."""
    seed = int.from_bytes(hashlib.blake2b(f"texture/{pattern}/{variant}".encode(), digest_size=8).digest(), "little")
    rng = np.random.Generator(np.random.PCG64(seed))
    if pattern == "stripes":
        angle = math.radians(float(rng.choice([0.0, 90.0, 45.0, -45.0, 20.0])))
        return (math.cos(angle), math.sin(angle), float(rng.uniform(0.035, 0.12)), float(rng.uniform(0.3, 0.6)))
    if pattern == "checks":
        angle = math.radians(float(rng.choice([0.0, 45.0])))
        return (math.cos(angle), math.sin(angle), float(rng.uniform(0.04, 0.1)))
    if pattern == "dots":
        return (float(rng.uniform(0.045, 0.09)), float(rng.uniform(0.2, 0.35)), float(rng.choice([0.0, 0.5])))
    if pattern == "gradient":
        angle = math.radians(float(rng.uniform(0, 360)))
        return (math.cos(angle), math.sin(angle), float(rng.uniform(0.4, 0.8)))
    if pattern == "noise":
        values: list[float] = []
        for _ in range(3):
            angle = float(rng.uniform(0, 2 * math.pi))
            values += [math.cos(angle), math.sin(angle), float(rng.uniform(6.0, 16.0)), float(rng.uniform(0, 1))]
        return (*values, float(rng.uniform(2.0, 4.0)))
    if pattern == "logo":
        return (float(rng.uniform(0.022, 0.03)), float(rng.uniform(0.5, 0.58)))
    raise ValueError(f"unknown texture pattern {pattern!r}; expected one of {list(PATTERNS)}")


def sample_texture(rng: np.random.Generator, split: str) -> TextureSpec:
    """A texture of ``split``'s bank: a pattern, one of the split's variants and two colours of its palette."""
    pattern = PATTERNS[int(rng.integers(len(PATTERNS)))]
    variants = texture_variants(split)
    variant = int(variants[rng.integers(len(variants))])
    colour_a, sector_a = garment_colour(rng, split)
    colour_b, sector_b = garment_colour(rng, split)
    if float(rng.random()) < 0.35:  # a tone-on-tone pattern: the second colour is a lighter or darker first colour
        factor = float(rng.choice([0.55, 1.5]))
        colour_b, sector_b = tuple(min(1.0, c * factor) for c in colour_a), sector_a
    return TextureSpec(pattern, variant, colour_a, colour_b, (sector_a, sector_b), _variant_params(pattern, variant))
