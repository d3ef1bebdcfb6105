"""Garment shape classes and their rendering: the torso panel (which actions deform) and the sleeves.

Shapes are signed distances in *garment coordinates*: body coordinates pulled back through the
garment's deformation, so the same functions draw the worn garment in every frame, its counterfactual
and the flat in-shop image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .raster import F32, Layer, coverage, ellipse_sdf, over
from .rig import BodyShape
from .textures import TextureSpec, sample_texture

GARMENT_CLASSES = ("t_shirt", "tank_top", "long_sleeve", "jacket")
CLASS_NAMES = {"t_shirt": "t-shirt", "tank_top": "tank top", "long_sleeve": "long-sleeve top", "jacket": "zip jacket"}
ZIPPER_COLOUR = (0.18, 0.18, 0.2)
PULL_COLOUR = (0.78, 0.78, 0.8)


@dataclass(frozen=True)
class GarmentSpec:
    garment_class: str
    texture: TextureSpec
    hem_y: float
    looseness: float  # extra half width over the torso
    neck_y: float  # centre of the neck hole ellipse
    neck_rx: float
    neck_ry: float
    upper_sleeve: float  # share of the upper arm covered by the sleeve (0 = sleeveless)
    fore_sleeve: float  # share of the forearm covered
    zip_top: float = 0.3  # jackets: where the zipper starts

    @property
    def has_zipper(self) -> bool:
        return self.garment_class == "jacket"

    @property
    def name(self) -> str:
        return CLASS_NAMES[self.garment_class]

    def neckline_y(self, x: float) -> float:
        """Lowest point of the neck opening at horizontal position ``x`` (for collar contact points)."""
        q = min(abs(x) / self.neck_rx, 0.95)
        return self.neck_y + self.neck_ry * (1.0 - q * q) ** 0.5

    def half_width(self, body: BodyShape, y):
        return body.torso_half_width(y) + self.looseness

    def panel_sdf(self, body: BodyShape, gx: np.ndarray, gy: np.ndarray, hw: np.ndarray | None = None) -> np.ndarray:
        """Signed distance of the torso panel (body, neck opening, class details) at garment coordinates.

        ``hw`` is ``half_width(body, gy)`` when the caller has it already.
        """
        hw = np.asarray(self.half_width(body, gy), dtype=F32) if hw is None else hw
        top = body.torso_top_at(gx).astype(F32) - F32(0.01)
        d = np.maximum(np.maximum(np.abs(gx) - hw, top - gy), gy - F32(self.hem_y))
        d = np.maximum(d, -ellipse_sdf(gx, gy, F32(0.0), F32(self.neck_y), F32(self.neck_rx), F32(self.neck_ry)))
        if self.garment_class == "tank_top":  # arm holes: cut the shoulders outside the straps
            hole = np.maximum(F32(0.13) - np.abs(gx), gy - F32(0.47))
            d = np.maximum(d, -hole)
        if self.garment_class == "jacket":  # stand-up collar on both sides of the neck
            collar = np.maximum(
                np.maximum(F32(0.036) - np.abs(gx), np.abs(gx) - F32(0.092)),
                np.maximum(F32(0.285) - gy, gy - F32(0.37)),
            )
            d = np.minimum(d, collar)
        return d

    def panel_colour(
        self,
        body: BodyShape,
        gx: np.ndarray,
        gy: np.ndarray,
        pull_y,
        fold: np.ndarray | None = None,
        hw: np.ndarray | None = None,
    ) -> np.ndarray:
        """Panel RGB ``(3, ...)``: texture, cloth shading across the body, fold shading, zipper line and pull (``hw`` as in :meth:`panel_sdf`)."""
        rgb = self.texture.colour(gx, gy)
        hw = np.asarray(self.half_width(body, gy), dtype=F32) if hw is None else hw
        q = gx / hw
        shade = F32(1.0) - F32(0.22) * q * q
        if fold is not None:
            shade = shade - F32(0.25) * fold
        rgb *= shade
        if self.has_zipper:
            line = np.clip(F32(1.5) - np.abs(gx) * F32(160.0), F32(0.0), F32(1.0)) * (gy > F32(self.zip_top))
            over(rgb, ZIPPER_COLOUR, line)
            pull = ((np.abs(gx) < F32(0.014)) & (np.abs(gy - pull_y) < F32(0.02))).astype(F32)
            over(rgb, PULL_COLOUR, pull)
        return rgb

    def sleeve_segments(self, body: BodyShape) -> tuple[tuple[float, float], tuple[float, float]]:
        """(covered share, radius) of the upper-arm and forearm sleeve."""
        return (self.upper_sleeve, body.upper_radius + 0.01), (self.fore_sleeve, body.fore_radius + 0.008)


def sample_garment(rng: np.random.Generator, split: str, garment_class: str | None = None) -> GarmentSpec:
    if garment_class is None:
        garment_class = GARMENT_CLASSES[int(rng.integers(len(GARMENT_CLASSES)))]
    if garment_class not in GARMENT_CLASSES:
        raise ValueError(f"unknown garment class {garment_class!r}; expected one of {list(GARMENT_CLASSES)}")
    texture = sample_texture(rng, split)
    hem = float(rng.uniform(0.86, 0.92))
    loose = float(rng.uniform(0.008, 0.025))
    if garment_class == "t_shirt":
        return GarmentSpec(
            garment_class,
            texture,
            hem,
            loose,
            0.325,
            float(rng.uniform(0.065, 0.08)),
            float(rng.uniform(0.035, 0.06)),
            float(rng.uniform(0.4, 0.65)),
            0.0,
        )
    if garment_class == "tank_top":
        return GarmentSpec(
            garment_class,
            texture,
            hem,
            loose,
            0.33,
            float(rng.uniform(0.07, 0.085)),
            float(rng.uniform(0.07, 0.1)),
            0.0,
            0.0,
        )
    if garment_class == "long_sleeve":
        return GarmentSpec(
            garment_class,
            texture,
            hem,
            loose,
            0.325,
            float(rng.uniform(0.06, 0.075)),
            float(rng.uniform(0.03, 0.05)),
            1.0,
            float(rng.uniform(0.8, 0.95)),
        )
    return GarmentSpec(
        garment_class,
        texture,
        hem + 0.02,
        loose + 0.01,
        0.31,
        0.036,
        0.03,
        1.0,
        float(rng.uniform(0.85, 0.95)),
        zip_top=0.3,
    )


def paint_sleeve(
    layer: Layer, garment: GarmentSpec, body: BodyShape, arm: tuple, length, which: int, pixels_per_unit: float
) -> None:
    """Paint the sleeve over an arm segment into ``layer``; ``arm`` is :func:`capsule`'s (distance, position along, offset across).

    ``which`` is 0 for the upper arm and 1 for the forearm; the texture is looked up in arm-aligned coordinates
    (across, along), so it moves with the arm.
    """
    share, radius = garment.sleeve_segments(body)[which]
    if share <= 0.0:
        return
    dist, h, across = arm
    alpha = coverage(dist - F32(radius), pixels_per_unit)
    alpha *= np.clip((F32(share) - h) * length * F32(pixels_per_unit) + F32(0.5), F32(0.0), F32(1.0))
    colour = garment.texture.colour(across + F32(0.5), h * length + F32(0.25 * which))
    colour *= F32(1.0) - F32(40.0) * across * across
    layer.paint(colour, alpha)
