"""Textured backgrounds: a wall (plain gradient, panels, tiles or mottled) above a floor band."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from .raster import F32

KINDS = ("plain", "panelled", "tiled", "mottled")


@dataclass(frozen=True)
class BackgroundSpec:
    kind: str
    wall: tuple[float, float, float]
    accent: tuple[float, float, float]
    floor: tuple[float, float, float]
    floor_y: float
    period: float
    waves: tuple[float, ...]

    def describe(self, colour_name) -> str:
        wall = colour_name(self.wall)
        return {
            "plain": f"a plain {wall} wall",
            "panelled": f"a panelled {wall} wall",
            "tiled": f"a tiled {wall} wall",
            "mottled": f"a mottled {wall} backdrop",
        }[self.kind]

    def render(self, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """RGB ``(3, H, W)`` float32 in [0, 1] on the pixel grid."""
        if self.kind == "plain":
            m = np.zeros_like(px)
        elif self.kind == "panelled":
            t = px / F32(self.period)
            m = (np.abs(t - np.floor(t) - F32(0.5)) < F32(0.06)).astype(F32)
        elif self.kind == "tiled":
            s = np.floor(px / F32(self.period)) + np.floor(py / F32(self.period))
            m = (s - F32(2.0) * np.floor(s * F32(0.5))) * F32(0.5)
        else:
            m = np.zeros_like(px)
            for k in range(2):
                c, s, f = self.waves[3 * k : 3 * k + 3]
                t = (px * F32(c) + py * F32(s)) * F32(f)
                m += np.abs(t - np.floor(t) - F32(0.5))
        wall = np.stack([F32(c) * (F32(1.05) - F32(0.2) * py) for c in self.wall])
        rgb = wall + m * (np.asarray(self.accent, dtype=F32)[:, None, None] - wall)
        floor = np.stack([F32(c) * (F32(0.8) + F32(0.2) * py) for c in self.floor])
        rgb = np.where(py > F32(self.floor_y), floor, rgb)
        return np.clip(rgb, F32(0.0), F32(1.0))


def sample_background(rng: np.random.Generator) -> BackgroundSpec:
    hue = float(rng.random())
    wall = colorsys.hsv_to_rgb(hue, float(rng.uniform(0.05, 0.35)), float(rng.uniform(0.55, 0.95)))
    accent = colorsys.hsv_to_rgb(
        (hue + float(rng.uniform(-0.1, 0.1))) % 1.0, float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.4, 0.8))
    )
    floor = colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.25, 0.55)))
    waves: list[float] = []
    for _ in range(2):
        a = float(rng.uniform(0, 2 * math.pi))
        waves += [math.cos(a), math.sin(a), float(rng.uniform(2.0, 6.0))]
    return BackgroundSpec(
        kind=KINDS[int(rng.integers(len(KINDS)))],
        wall=wall,
        accent=accent,
        floor=floor,
        floor_y=float(rng.uniform(0.8, 0.95)),
        period=float(rng.uniform(0.12, 0.3)),
        waves=tuple(waves),
    )
