"""The 3D hand prior of a real clip: hand keypoints with depth -> the synthetic world's hand tracks -> its renderer.

Each found hand becomes the world's hand state: centre (a little past the wrist towards the knuckles), in-plane
angle (wrist -> middle knuckle), grip (open, pinch or grasp, from the fingertips) and depth in front of the torso
plane (the body pose's wrist depth). The body units of the world are set per frame from the hands' size, so a real
hand is drawn at its own size. :func:`~itryon.data.synthetic.hands.prior_frames` then renders exactly as for the
synthetic clips; frames where a hand is not found get no hand (128, i.e. 0).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import median_filter

from itryon.data.synthetic.actions import GRASP, OPEN, PINCH
from itryon.data.synthetic.hands import REST_DEPTH, HandTracks, prior_frames, render_hands
from itryon.data.synthetic.rig import BodyMotion

from .types import FINGER_TIPS, INDEX_TIP, LEFT, MIDDLE_MCP, RIGHT, THUMB_TIP, WRIST, BodyPose, HandPose, J

PALM_LENGTH = 0.066  # body units from the wrist to the middle knuckle of the world's hand shape
CENTRE_OFFSET = 0.03  # body units from the wrist to the hand centre (the world's WRIST_OFFSET)
PINCH_GAP = 0.35  # thumb tip to index tip, in palm lengths, below which the hand pinches
FIST_REACH = 1.2  # mean fingertip distance from the wrist, in palm lengths, below which the hand grasps


def grip_of(points: np.ndarray) -> int:
    """The world's grip of one hand's keypoints ``(21, 3)`` (pixels)."""
    palm = np.linalg.norm(points[MIDDLE_MCP] - points[WRIST]) + 1e-6
    if np.linalg.norm(points[THUMB_TIP] - points[INDEX_TIP]) < PINCH_GAP * palm:
        return PINCH
    if np.mean([np.linalg.norm(points[tip] - points[WRIST]) for tip in FINGER_TIPS]) < FIST_REACH * palm:
        return GRASP
    return OPEN


def _fill_missing(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``values`` ``(T, ...)`` with each frame where ``present`` is False copied from the nearest present frame
    (only to place the renderer's boxes: those frames draw no hand)."""
    found = np.flatnonzero(present)
    nearest = found[np.abs(np.arange(len(present))[:, None] - found[None, :]).argmin(axis=1)]
    return values[nearest]


def hand_motion(hands: HandPose, height: int) -> tuple[BodyMotion, np.ndarray]:
    """A per-frame similarity (scale only) making a body unit ``height * s_t`` pixels, ``s_t`` from the palms' size,
    and the scales ``(T,)``. Frames without hands take the nearest frame's scale."""
    palm = np.linalg.norm(hands.points[:, :, MIDDLE_MCP, :2] - hands.points[:, :, WRIST, :2], axis=-1)  # (T, 2)
    count = hands.present.sum(axis=1)
    scale = np.where(count > 0, (palm * hands.present).sum(axis=1) / np.maximum(count, 1), 0.0) / (height * PALM_LENGTH)
    scale = _fill_missing(scale, count > 0)
    scale = median_filter(scale, size=5, mode="nearest")  # hand sizes jitter from frame to frame; the body does not
    t = len(scale)
    to_image = np.zeros((t, 2, 3))
    to_image[:, 0, 0] = to_image[:, 1, 1] = scale
    to_body = np.zeros((t, 2, 3))
    to_body[:, 0, 0] = to_body[:, 1, 1] = 1.0 / scale
    return BodyMotion(to_body=to_body, to_image=to_image, scale=float(scale.mean())), scale


def hand_tracks(hands: HandPose, pose: BodyPose, height: int, width: int) -> tuple[HandTracks, BodyMotion, list[int]]:
    """The world's hand tracks of the hands found, their motion, and which hands (``RIGHT``, ``LEFT``) were found at all."""
    t = hands.points.shape[0]
    motion, scale = hand_motion(hands, height)
    center = np.zeros((2, t, 2))
    depth = np.full((2, t), REST_DEPTH)
    angle = np.full((2, t), math.pi / 2)
    grip = np.full((2, t), OPEN, dtype=np.int64)
    found = []
    for side, wrist_joint in ((RIGHT, J["r_wrist"]), (LEFT, J["l_wrist"])):
        present = hands.present[:, side]
        if not present.any():
            continue
        found.append(side)
        pts = hands.points[:, side]  # (T, 21, 3)
        along = pts[:, MIDDLE_MCP, :2] - pts[:, WRIST, :2]  # (T, 2) pixels
        centre_px = pts[:, WRIST, :2] + along * (CENTRE_OFFSET / PALM_LENGTH)
        frame_units = np.stack([(centre_px[:, 0] - width / 2.0) / height, centre_px[:, 1] / height], axis=-1)
        center[side] = _fill_missing(frame_units / scale[:, None], present)
        angle[side] = _fill_missing(np.arctan2(along[:, 1], along[:, 0]), present)
        grip[side] = _fill_missing(np.array([grip_of(p) for p in pts]), present)
        known = pose.visible[:, wrist_joint]
        wrist_depth = np.where(known, pose.depth[:, wrist_joint] / (height * scale), REST_DEPTH)
        depth[side] = _fill_missing(np.maximum(wrist_depth, 0.0), present)
    tracks = HandTracks(center=center, depth=depth, angle=angle, grip=grip, contact=np.zeros((2, t), dtype=bool))
    return tracks, motion, found


def render_hand_prior(hands: HandPose, pose: BodyPose, height: int, width: int) -> np.ndarray:
    """The hand prior video uint8 ``(3, T, H, W)`` (128 where there is no hand), drawn by the world's renderer."""
    t = hands.points.shape[0]
    if not hands.present.any():
        return prior_frames([], t, height, width)
    tracks, motion, found = hand_tracks(hands, pose, height, width)
    rendered = render_hands(tracks, motion, height, width, height * motion.scale)
    kept = []
    for side in found:
        hand = rendered[side]
        hand.alpha[~hands.present[:, side]] = 0.0  # not found in that frame: no hand there
        kept.append(hand)
    return prior_frames(kept, t, height, width)


def hand_positions(hands: HandPose) -> np.ndarray:
    """``(T, 2, 2)`` pixel centre of each hand (NaN where not found), where the prior draws it."""
    pts = hands.points[..., :2]
    centre = pts[:, :, WRIST] + (pts[:, :, MIDDLE_MCP] - pts[:, :, WRIST]) * (CENTRE_OFFSET / PALM_LENGTH)
    return np.where(hands.present[..., None], centre, np.nan)
