"""The person's body rig: static proportions, the per-frame body motion (sway, turn, breathing) and arm IK.

Geometry lives in *body coordinates* (frame units of the person at rest: x = 0 is the body's midline,
y grows downwards, 1.0 = frame height). Each frame maps body coordinates to the image by a similarity
with a horizontal squash (the slight turn); rendering pulls every pixel back into body coordinates, so
garment texture stays attached to the body from frame to frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

RIGHT, LEFT = 0, 1  # the person's hands; the right hand appears on the image's left (x < 0)
SIDES = (-1.0, 1.0)


@dataclass(frozen=True)
class BodyShape:
    """Static proportions in body units."""

    shoulder_x: float  # half distance between the shoulder joints
    shoulder_y: float
    upper_arm: float  # shoulder -> elbow length
    forearm: float  # elbow -> wrist length
    upper_radius: float
    fore_radius: float
    torso_top: float  # height of the torso at the midline
    torso_chest: float  # torso half width at the shoulders
    torso_waist: float  # torso half width at the waist
    waist_y: float
    head_y: float
    head_rx: float
    head_ry: float
    neck_half: float
    hip_y: float = 1.0

    def torso_half_width(self, y):
        """Torso half width at height ``y`` (narrowing from chest to waist, widening a little at the hips)."""
        chest_to_waist = np.clip((y - self.shoulder_y) / (self.waist_y - self.shoulder_y), 0.0, 1.0)
        below_waist = np.clip((y - self.waist_y) / 0.3, 0.0, 1.0)
        return self.torso_chest + (self.torso_waist - self.torso_chest) * chest_to_waist + 0.03 * below_waist

    def torso_top_at(self, x):
        """Top edge of the torso (shoulder slope) at horizontal position ``x``."""
        q = x / self.torso_chest
        return self.torso_top + 0.06 * q * q

    def shoulder(self, hand: int) -> tuple[float, float]:
        return SIDES[hand] * self.shoulder_x, self.shoulder_y

    def rest_hand(self, hand: int) -> tuple[float, float]:
        """Hand centre with the arm hanging relaxed beside the body."""
        return SIDES[hand] * (self.shoulder_x + 0.06), self.shoulder_y + 0.95 * (self.upper_arm + self.forearm) + 0.02


def sample_body_shape(rng: np.random.Generator) -> BodyShape:
    build = float(rng.uniform(0.92, 1.08))
    arm = float(rng.uniform(0.96, 1.04))
    return BodyShape(
        shoulder_x=0.175 * build,
        shoulder_y=0.385,
        upper_arm=0.245 * arm,
        forearm=0.225 * arm,
        upper_radius=0.043 * build,
        fore_radius=0.036 * build,
        torso_top=0.335,
        torso_chest=0.195 * build,
        torso_waist=0.165 * build,
        waist_y=0.72,
        head_y=float(rng.uniform(0.165, 0.185)),
        head_rx=float(rng.uniform(0.078, 0.088)),
        head_ry=float(rng.uniform(0.098, 0.108)),
        neck_half=0.038 * build,
    )


@dataclass(frozen=True)
class BodyMotion:
    """Per-frame affine maps between image and body coordinates (float64 ``(T, 2, 3)``)."""

    to_body: np.ndarray
    to_image: np.ndarray
    scale: float  # mean scale: body units -> frame units

    @functools.cached_property
    def _to_body_f32(self) -> np.ndarray:
        return self.to_body.astype(np.float32)[:, :, :, None, None]  # (T, 2, 3, 1, 1)

    def body_grid(self, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Body coordinates ``(T, h, w)`` float32 of frame-unit pixel positions ``(h, w)`` (the grid or a box of it)."""
        a = self._to_body_f32
        bx = a[:, 0, 0] * px + a[:, 0, 1] * py + a[:, 0, 2]
        by = a[:, 1, 0] * px + a[:, 1, 1] * py + a[:, 1, 2]
        return bx, by

    def to_pixels(self, points: np.ndarray, height: int, width: int) -> np.ndarray:
        """Body points ``(T, N, 2)`` -> pixel coordinates ``(T, N, 2)`` (x right, y down, pixel centres at +0.5)."""
        m = self.to_image
        fx = m[:, None, 0, 0] * points[..., 0] + m[:, None, 0, 1] * points[..., 1] + m[:, None, 0, 2]
        fy = m[:, None, 1, 0] * points[..., 0] + m[:, None, 1, 1] * points[..., 1] + m[:, None, 1, 2]
        return np.stack([fx * height + width / 2.0, fy * height], axis=-1)


def sample_motion(rng: np.random.Generator, num_frames: int, fps: float) -> BodyMotion:
    """Slow sway (translation + roll about the hips), a slight turn (horizontal squash) and breathing."""
    scale = float(rng.uniform(1.02, 1.12))
    x0 = float(rng.uniform(-0.07, 0.07))
    y0 = float(rng.uniform(-0.03, 0.01))
    sway_amp, sway_hz, sway_phase = (
        float(rng.uniform(0.005, 0.025)),
        float(rng.uniform(0.15, 0.4)),
        float(rng.uniform(0, 2 * math.pi)),
    )
    roll_amp = float(rng.uniform(0.0, 0.05))
    turn_amp, turn_hz, turn_phase = (
        float(rng.uniform(0.0, 0.12)),
        float(rng.uniform(0.1, 0.3)),
        float(rng.uniform(0, 2 * math.pi)),
    )
    breath_amp, breath_hz, breath_phase = (
        float(rng.uniform(0.005, 0.015)),
        float(rng.uniform(0.2, 0.35)),
        float(rng.uniform(0, 2 * math.pi)),
    )
    pivot = (0.0, 0.62)  # the chest
    to_body = np.zeros((num_frames, 2, 3))
    to_image = np.zeros((num_frames, 2, 3))
    for t in range(num_frames):
        sec = t / fps
        sway = math.sin(2 * math.pi * sway_hz * sec + sway_phase)  # math.sin: libm, not a SIMD path
        roll = roll_amp * sway
        squash = 1.0 - turn_amp * (0.5 - 0.5 * math.cos(2 * math.pi * turn_hz * sec + turn_phase))
        s = scale * (1.0 + breath_amp * math.sin(2 * math.pi * breath_hz * sec + breath_phase))
        c, n = math.cos(roll), math.sin(roll)
        # image = pivot + offset + s * R(roll) @ diag(squash, 1) @ (body - pivot), written out in scalars
        # (no BLAS/LAPACK) so that the result is the same on every machine
        a00, a01, a10, a11 = s * c * squash, -s * n, s * n * squash, s * c
        ox, oy = pivot[0] + x0 + sway_amp * sway, pivot[1] + y0
        tx, ty = ox - (a00 * pivot[0] + a01 * pivot[1]), oy - (a10 * pivot[0] + a11 * pivot[1])
        to_image[t] = [[a00, a01, tx], [a10, a11, ty]]
        det = a00 * a11 - a01 * a10
        i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
        to_body[t] = [[i00, i01, -(i00 * tx + i01 * ty)], [i10, i11, -(i10 * tx + i11 * ty)]]
    return BodyMotion(to_body=to_body, to_image=to_image, scale=scale)


def solve_arm(
    shoulder: tuple[float, float], wrist: np.ndarray, upper: float, fore: float, side: float
) -> tuple[np.ndarray, np.ndarray]:
    """Two-bone IK per frame: elbow ``(T, 2)`` with the elbow bent away from the midline, and the reachable wrist."""
    sx, sy = shoulder
    elbows = np.zeros_like(wrist)
    wrists = np.zeros_like(wrist)
    for t, (wx, wy) in enumerate(wrist):
        dx, dy = wx - sx, wy - sy
        dist = math.hypot(dx, dy)
        reach = min(max(dist, abs(upper - fore) + 1e-4), upper + fore - 1e-4)
        ux, uy = (dx / dist, dy / dist) if dist > 1e-9 else (0.0, 1.0)
        wrists[t] = sx + ux * reach, sy + uy * reach
        cos_a = (upper * upper + reach * reach - fore * fore) / (2 * upper * reach)
        a = math.acos(max(-1.0, min(1.0, cos_a)))
        base = math.atan2(uy, ux)
        candidates = [(sx + upper * math.cos(base + k * a), sy + upper * math.sin(base + k * a)) for k in (1.0, -1.0)]
        elbows[t] = max(candidates, key=lambda e: side * e[0])
    return elbows, wrists
