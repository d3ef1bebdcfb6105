"""Colours of the world: split-disjoint garment colours, skin tones, hair, trousers, and their names for captions."""

from __future__ import annotations

import colorsys

import numpy as np

from .splits import HUE_SECTORS, hue_sectors

SKIN_TONES = (
    ("light", (0.96, 0.82, 0.72)),
    ("fair", (0.93, 0.76, 0.62)),
    ("medium", (0.84, 0.64, 0.50)),
    ("olive", (0.76, 0.60, 0.44)),
    ("tan", (0.70, 0.52, 0.38)),
    ("brown", (0.55, 0.38, 0.27)),
    ("dark brown", (0.42, 0.28, 0.20)),
    ("deep", (0.30, 0.20, 0.15)),
)
HAIR_COLOURS = (
    ("black", (0.08, 0.07, 0.07)),
    ("dark brown", (0.24, 0.15, 0.09)),
    ("brown", (0.42, 0.28, 0.16)),
    ("blond", (0.85, 0.72, 0.45)),
    ("red", (0.60, 0.25, 0.12)),
    ("grey", (0.62, 0.62, 0.62)),
)
TROUSERS = (
    ("blue jeans", (0.20, 0.29, 0.48)),
    ("black trousers", (0.10, 0.10, 0.12)),
    ("khaki trousers", (0.66, 0.59, 0.42)),
    ("grey trousers", (0.42, 0.43, 0.45)),
)
UNDERSHIRTS = (("white", (0.93, 0.93, 0.92)), ("grey", (0.55, 0.56, 0.58)), ("black", (0.12, 0.12, 0.13)))
_HUE_NAMES = (
    "red",
    "orange",
    "yellow",
    "lime",
    "green",
    "mint",
    "teal",
    "sky blue",
    "blue",
    "indigo",
    "violet",
    "purple",
    "magenta",
    "pink",
)


def garment_colour(rng: np.random.Generator, split: str) -> tuple[tuple[float, float, float], int]:
    """A saturated colour from one of the split's hue sectors; returns (rgb in [0, 1], sector)."""
    sectors = hue_sectors(split)
    sector = int(sectors[rng.integers(len(sectors))])
    hue = (sector + float(rng.uniform(0.1, 0.9))) / HUE_SECTORS
    sat = float(rng.uniform(0.5, 0.9))
    val = float(rng.uniform(0.45, 0.95))
    return colorsys.hsv_to_rgb(hue, sat, val), sector


def jitter(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float) -> tuple[float, float, float]:
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0.0, 1.0)) for c in rgb)


def colour_name(rgb: tuple[float, float, float]) -> str:
    """A plain-English colour name ("dark teal", "light grey") for captions."""
    hue, sat, val = colorsys.rgb_to_hsv(*rgb)
    if sat < 0.2:
        return "white" if val > 0.85 else "black" if val < 0.2 else "light grey" if val > 0.6 else "grey"
    hue_deg = hue * 360.0
    bounds = (15, 40, 65, 90, 140, 160, 185, 205, 240, 260, 280, 300, 325, 345)
    name = next((n for b, n in zip(bounds, _HUE_NAMES) if hue_deg < b), "red")
    if val < 0.55:
        return f"dark {name}"
    if val > 0.85 and sat < 0.6:
        return f"light {name}"
    return name
