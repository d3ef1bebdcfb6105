"""Hands with a 3D state (centre, depth in front of the torso plane, in-plane angle, grip) and their renders.

The same hand geometry gives the hand in the video (skin, shaded), the garment-agnostic hand prior
(normals and depth, drawn with no garment, 0 where there is no hand) and the hands' share of the
agnostic mask. A passive gesture has the same 2D path as the action it imitates; only its depth (in
front of the garment instead of on it) and its grip (open palm) differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..pixels import to_uint8
from .actions import OPEN, Event, action_kind, envelope
from .raster import F32, Box, coverage, over
from .rig import BodyMotion, BodyShape

REST_DEPTH = 0.07  # hanging beside the hip
CONTACT_DEPTH = 0.0  # on the garment surface
APPROACH_FRAMES = 2
PRIOR_MAX_DEPTH = 0.2
NO_HAND = int(to_uint8(np.array([0.0], dtype=F32), low=-1.0)[0])  # hand prior value 0 (128)
# per grip (open, pinch, grasp): palm (centre u, radius u, radius v), fingers (centre u, radius u, radius v), ring (centre u, radius, half width)
_PALM = 1.3 * np.array([[0.0, 0.03, 0.028], [0.0, 0.03, 0.028], [0.004, 0.035, 0.031]])
_FINGERS = 1.3 * np.array([[0.047, 0.036, 0.025], [0.022, 0.022, 0.024], [0.026, 0.022, 0.03]])
_RING = np.array([[0.0, 0.0, -1.0], [0.065, 0.018, 0.007], [0.0, 0.0, -1.0]])  # half width < 0: no ring


@dataclass(frozen=True)
class HandTracks:
    """Per hand (right, left) and frame: centre ``(2, T, 2)``, depth ``(2, T)``, angle ``(2, T)``, grip ``(2, T)``."""

    center: np.ndarray
    depth: np.ndarray
    angle: np.ndarray
    grip: np.ndarray
    contact: np.ndarray  # bool (2, T): the hand touches the garment


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def build_tracks(
    events: list[Event],
    passive: bool,
    body: BodyShape,
    num_frames: int,
    idle: np.ndarray,
    passive_depth: float,
    hover_grip: bool = False,
) -> HandTracks:
    """Hand tracks from the planned events; ``idle`` ``(2, 3)`` holds per-hand (amplitude, frequency, phase) of rest motion.

    A passive hand opens its palm, unless ``hover_grip``: then it keeps the action's grip and differs from
    the action only in depth (the ``contact`` benchmark family).
    """
    center = np.zeros((2, num_frames, 2))
    depth = np.full((2, num_frames), REST_DEPTH)
    angle = np.full((2, num_frames), math.pi / 2)
    grip = np.full((2, num_frames), OPEN, dtype=np.int64)
    contact = np.zeros((2, num_frames), dtype=bool)
    best = np.zeros((2, num_frames))
    for hand in range(2):
        rx, ry = body.rest_hand(hand)
        amp, freq, phase = idle[hand]
        for t in range(num_frames):
            center[hand, t] = rx + amp * math.sin(freq * t + phase), ry + 0.5 * amp * math.cos(freq * t + phase)
    rest = center.copy()
    for event in events:
        kind = action_kind(event.kind)
        path = kind.hand_path(event, envelope(event, num_frames, kind.persists))  # (T, 2)
        target_angle = kind.hand_angle(event)
        target_depth = passive_depth if passive else CONTACT_DEPTH
        h = event.hand
        for t in range(num_frames):
            if t < event.start:
                w = 1.0 - (event.start - t) / (APPROACH_FRAMES + 1)
            elif t >= event.end:
                w = 1.0 - (t - event.end + 1) / (APPROACH_FRAMES + 1)
            else:
                w = 1.0
            if w <= 0.0 or w <= best[h, t]:
                continue
            best[h, t] = w
            p = path[min(max(t, event.start), event.end - 1)]
            center[h, t] = rest[h, t] + w * (p - rest[h, t])
            depth[h, t] = REST_DEPTH + w * (target_depth - REST_DEPTH)
            angle[h, t] = math.pi / 2 + w * _wrap(target_angle - math.pi / 2)
            acting = w == 1.0
            grip[h, t] = kind.grip if acting and (hover_grip or not passive) else OPEN
            contact[h, t] = acting and not passive
    return HandTracks(center, depth, angle, grip, contact)


HAND_REACH = 0.115  # body units from the hand centre that the hand shape can reach


@dataclass
class HandRender:
    """One hand rendered on the box it reaches during the clip: coverage, pseudo-normals and depth."""

    box: Box
    alpha: np.ndarray  # (T, h, w)
    nx: np.ndarray  # image-plane normal components in [-1, 1]
    ny: np.ndarray
    nz: np.ndarray  # facing the camera, in [0, 1]
    depth: np.ndarray  # (T, 1, 1)


def render_hands(
    tracks: HandTracks, motion: BodyMotion, height: int, width: int, pixels_per_unit: float
) -> list[HandRender]:
    """Hand shapes (palm + fingers, or a pinch ring, or a fist) in each hand's local frame, on boxes around the hands."""
    hands = []
    for hand in range(2):
        centre_px = motion.to_pixels(tracks.center[hand][:, None, :], height, width)[:, 0]  # (T, 2)
        margin = HAND_REACH * pixels_per_unit * 1.2 + 1.0
        box = Box.around(centre_px[:, None, :], margin, height, width)
        bx, by = motion.body_grid(box.px, box.py)  # (T, h, w)
        cx = tracks.center[hand, :, 0].astype(F32)[:, None, None]  # (T, 1, 1)
        cy = tracks.center[hand, :, 1].astype(F32)[:, None, None]
        ca = np.array([math.cos(a) for a in tracks.angle[hand]], dtype=F32)[:, None, None]  # libm, not a SIMD path
        sa = np.array([math.sin(a) for a in tracks.angle[hand]], dtype=F32)[:, None, None]
        g = tracks.grip[hand]
        palm, fingers, ring = (
            table[g].astype(F32)[:, :, None, None] for table in (_PALM, _FINGERS, _RING)
        )  # (T, 3, 1, 1)
        dx, dy = bx - cx, by - cy
        u = dx * ca + dy * sa  # along the fingers
        v = dy * ca - dx * sa  # across
        qu, qv = (u - palm[:, 0]) / palm[:, 1], v / palm[:, 2]
        q_palm = np.sqrt(qu * qu + qv * qv)
        qu, qv = (u - fingers[:, 0]) / fingers[:, 1], v / fingers[:, 2]
        q_fingers = np.sqrt(qu * qu + qv * qv)
        d = np.minimum(
            (q_palm - F32(1.0)) * palm[:, 2], (q_fingers - F32(1.0)) * np.minimum(fingers[:, 1], fingers[:, 2])
        )
        ru = u - ring[:, 0]
        d = np.minimum(d, np.abs(np.sqrt(ru * ru + v * v) - ring[:, 1]) - ring[:, 2])
        q = np.minimum(np.minimum(q_palm, q_fingers), F32(1.0))
        scale = F32(1.0 / 0.06)
        hands.append(
            HandRender(
                box=box,
                alpha=coverage(d, pixels_per_unit),
                nx=np.clip(dx * scale, F32(-1.0), F32(1.0)),
                ny=np.clip(dy * scale, F32(-1.0), F32(1.0)),
                nz=np.sqrt(F32(1.0) - F32(0.85) * q * q),
                depth=tracks.depth[hand].astype(F32)[:, None, None],
            )
        )
    return hands


def hand_prior(hands: list[HandRender]) -> tuple[Box, np.ndarray]:
    """Garment-agnostic hand prior in [-1, 1]: (normal x, normal y, closeness-shaded facing), 0 off the hands.

    Returns the box holding both hands and the prior inside it ``(3, T, h, w)``; the prior is 0 outside the box.
    Closeness (1 on the garment plane, falling with depth) makes a touching hand bright and a hovering one dim.
    """
    box = hands[0].box
    for hand in hands[1:]:
        box = box.union(hand.box)
    prior = np.zeros((3, hands[0].alpha.shape[0], *box.shape), dtype=F32)
    for hand in hands:
        closeness = F32(1.0) - np.clip(hand.depth / F32(PRIOR_MAX_DEPTH), F32(0.0), F32(1.0))  # (T, 1, 1)
        value = np.stack(
            [
                F32(0.8) * hand.nx,
                F32(0.8) * hand.ny,
                (F32(0.25) + F32(0.75) * closeness) * (F32(0.4) + F32(0.6) * hand.nz),
            ]
        )
        over(prior[(..., *hand.box.within(box))], value, hand.alpha)
    return box, prior


def prior_frames(hands: list[HandRender], num_frames: int, height: int, width: int) -> np.ndarray:
    """The hand prior video uint8 ``(3, T, H, W)``: :func:`hand_prior` encoded from [-1, 1], ``NO_HAND`` off the hands.

    The one renderer of the hand prior: synthetic clips and preprocessed real clips both go through it.
    """
    frames = np.full((3, num_frames, height, width), NO_HAND, dtype=np.uint8)
    if not hands:
        return frames
    box, prior = hand_prior(hands)
    box.of(frames)[...] = to_uint8(prior, low=-1.0, in_place=True)
    return frames
