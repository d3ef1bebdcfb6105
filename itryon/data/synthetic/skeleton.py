"""The 2D pose render: a skeleton of coloured limbs and white joints on black, drawn from joint positions only.

One renderer for the synthetic world and for real clips (``itryon preprocess``), so that a model sees the same
pose encoding in both. Joints, in order: head, neck, right shoulder/elbow/wrist, left shoulder/elbow/wrist, right
hip, left hip, right hand, left hand; real clips may add legs (:data:`LEG_LIMBS`, joints 12..15: right knee,
left knee, right ankle, left ankle) with their own colours.
"""

from __future__ import annotations

import numpy as np

from ..pixels import to_uint8
from .raster import F32, disk_offsets, stamp

JOINTS = (
    "head",
    "neck",
    "r_shoulder",
    "r_elbow",
    "r_wrist",
    "l_shoulder",
    "l_elbow",
    "l_wrist",
    "r_hip",
    "l_hip",
    "r_hand",
    "l_hand",
)
LEG_JOINTS = ("r_knee", "l_knee", "r_ankle", "l_ankle")
POSE_LIMBS = ((0, 1), (1, 2), (2, 3), (3, 4), (4, 10), (1, 5), (5, 6), (6, 7), (7, 11), (1, 8), (1, 9))
POSE_COLOURS = (
    (1.0, 0.0, 0.0),
    (1.0, 0.45, 0.0),
    (1.0, 0.85, 0.0),
    (0.6, 1.0, 0.0),
    (0.2, 1.0, 0.3),
    (0.0, 1.0, 0.7),
    (0.0, 0.8, 1.0),
    (0.0, 0.35, 1.0),
    (0.3, 0.0, 1.0),
    (0.75, 0.0, 1.0),
    (1.0, 0.0, 0.6),
)
LEG_LIMBS = ((8, 12), (12, 14), (9, 13), (13, 15))
LEG_COLOURS = ((0.55, 0.2, 0.1), (0.85, 0.55, 0.35), (0.1, 0.35, 0.55), (0.35, 0.65, 0.85))
OFF_FRAME = -1.0e6  # where invisible joints go: every mark there falls outside the frame


def palette(colours) -> np.ndarray:
    """uint8 ``(3, L + 2)`` colour of each label: 0 background, 1..L the limbs in drawing order, L + 1 the joints."""
    return to_uint8(np.array(((0.0, 0.0, 0.0), *colours, (1.0, 1.0, 1.0)), dtype=F32).T.copy(), low=0.0)


POSE_PALETTE = palette(POSE_COLOURS)  # (3, 13)


def draw_pose(
    pixels: np.ndarray,
    height: int,
    width: int,
    limbs=POSE_LIMBS,
    colours=POSE_COLOURS,
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """Skeleton uint8 ``(3, T, H, W)`` from joint pixel positions ``(T, J, 2)`` (x right, y down): the limbs in order,
    then the joints on top. ``visible`` ``(T, J)`` bool leaves out joints not found and the limbs touching them."""
    if len(limbs) != len(colours):
        raise ValueError(f"draw_pose needs one colour per limb, got {len(limbs)} limbs and {len(colours)} colours")
    t_count = pixels.shape[0]
    labels = np.zeros((t_count, height, width), dtype=np.uint8)
    x, y = pixels[..., 0], pixels[..., 1]  # (T, J)
    if visible is not None:
        x, y = np.where(visible, x, OFF_FRAME), np.where(visible, y, OFF_FRAME)
    steps = np.linspace(0.0, 1.0, max(8, int(0.6 * height)))  # (S,)
    first, second = np.array(limbs).T
    ax, ay, bx, by = x[:, first, None], y[:, first, None], x[:, second, None], y[:, second, None]  # (T, L, 1)
    if visible is not None:  # a limb with an end not found is not drawn
        both = (visible[:, first] & visible[:, second])[..., None]
        ax, ay = np.where(both, ax, OFF_FRAME), np.where(both, ay, OFF_FRAME)
        bx, by = np.where(both, bx, OFF_FRAME), np.where(both, by, OFF_FRAME)
    limb_labels = np.arange(1, len(limbs) + 1)[None, :, None]
    stamp(
        labels, ax + steps * (bx - ax), ay + steps * (by - ay), limb_labels, disk_offsets(max(0.5, height / 96.0))
    )  # (T, L, S) points
    stamp(labels, x, y, len(limbs) + 1, disk_offsets(max(1.0, height / 40.0)))
    table = POSE_PALETTE if colours is POSE_COLOURS else palette(colours)
    return np.take(table, labels, axis=1)
