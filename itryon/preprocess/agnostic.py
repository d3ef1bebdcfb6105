"""The garment-agnostic mask and video, garment-category aware, from body keypoints and person segmentation.

As image try-on datasets build theirs, the region to generate is drawn from the pose (a torso polygon widened
past the shoulders and hips, thick limbs), joined with the garment's parsed labels when a human parser gives them,
and limited to the person's silhouette grown by a margin, so that the background far from the person stays:

* ``upper``: torso from the shoulders to below the hips, both arms and the hands;
* ``lower``: from above the hips down both legs (to the frame's bottom edge when the knees or ankles are out of
  frame), and the hands wherever they are over that region;
* ``dress``: both.

The arms and hands over the garment region are inside the mask (the data contract's agnostic video hides them,
since the garment's response to them is what the model generates); the head is never inside. Sizes scale with
the shoulder width, so the mask follows the person at any distance.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from itryon.data.synthetic.render import GREY

from .types import LIP, BodyPose, HandPose, J, Segmentation

CATEGORIES = ("upper", "lower", "dress")
PARTS = {  # LIP labels that belong to each category's region when a parser gives them
    "upper": ("upper_clothes", "coat", "left_arm", "right_arm", "glove", "scarf"),
    "lower": ("pants", "skirt", "left_leg", "right_leg"),
    "dress": (
        "upper_clothes",
        "coat",
        "dress",
        "jumpsuit",
        "skirt",
        "pants",
        "left_arm",
        "right_arm",
        "glove",
        "scarf",
        "left_leg",
        "right_leg",
    ),
}
PERSON_MARGIN = 0.12  # silhouette growth, in shoulder widths
ARM_WIDTH = 0.5  # limb stroke widths, in shoulder widths
LEG_WIDTH = 0.6
HAND_RADIUS = 0.3
MASK_VISIBLE = 0.2  # joints scored this high shape the mask (a mask would rather cover too much than too little)


def check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise ValueError(f"unknown garment category {category!r}; expected one of {list(CATEGORIES)}")
    return category


def _shoulder_width(p: np.ndarray, v: np.ndarray, height: int) -> float:
    if v[J["r_shoulder"]] and v[J["l_shoulder"]]:
        return float(np.linalg.norm(p[J["r_shoulder"]] - p[J["l_shoulder"]])) + 1.0
    if v[J["r_hip"]] and v[J["l_hip"]]:
        return 1.4 * float(np.linalg.norm(p[J["r_hip"]] - p[J["l_hip"]])) + 1.0
    return 0.25 * height


def _down(p: np.ndarray, v: np.ndarray, height: int) -> np.ndarray:
    """Unit vector from the neck towards the hips (the body's downwards), image down when unknown."""
    if v[J["neck"]] and (v[J["r_hip"]] or v[J["l_hip"]]):
        hips = p[[j for j in (J["r_hip"], J["l_hip"]) if v[j]]].mean(axis=0)
        d = hips - p[J["neck"]]
        if np.linalg.norm(d) > 1e-3 * height:
            return d / np.linalg.norm(d)
    return np.array([0.0, 1.0])


def _polyline(draw: ImageDraw.ImageDraw, points: list[np.ndarray], width: float) -> None:
    pts = [tuple(map(float, q)) for q in points]
    draw.line(pts, fill=1, width=max(1, int(round(width))), joint="curve")
    for q in pts:  # round caps
        r = width / 2.0
        draw.ellipse((q[0] - r, q[1] - r, q[0] + r, q[1] + r), fill=1)


def _far(point: np.ndarray, direction: np.ndarray, height: int, width: int) -> np.ndarray:
    return point + direction * 2.0 * (height + width)  # past the frame: drawing clips it


def _upper(draw, p, v, sw, down, height, width, hands) -> None:
    right = (p[J["r_shoulder"]] - p[J["l_shoulder"]]) / max(
        np.linalg.norm(p[J["r_shoulder"]] - p[J["l_shoulder"]]), 1e-6
    )
    rs, ls = p[J["r_shoulder"]] + 0.15 * sw * right, p[J["l_shoulder"]] - 0.15 * sw * right
    if v[J["r_hip"]] and v[J["l_hip"]]:
        torso = np.linalg.norm((p[J["r_hip"]] + p[J["l_hip"]]) / 2 - (rs + ls) / 2)
        rh, lh = (
            p[J["r_hip"]] + 0.2 * sw * right + 0.2 * torso * down,
            p[J["l_hip"]] - 0.2 * sw * right + 0.2 * torso * down,
        )
    else:  # hips out of frame: the torso runs off the bottom edge
        rh, lh = _far(rs, down, height, width), _far(ls, down, height, width)
    top = -0.12 * sw * down
    draw.polygon([tuple(rs + top), tuple(ls + top), tuple(lh), tuple(rh)], fill=1)
    for side in ("r", "l"):
        chain = [p[J[f"{side}_shoulder"]]] + [p[J[f"{side}_{k}"]] for k in ("elbow", "wrist") if v[J[f"{side}_{k}"]]]
        if len(chain) > 1:
            _polyline(draw, chain, ARM_WIDTH * sw)
    _hands(draw, p, v, sw, hands)


def _lower(draw, p, v, sw, down, height, width) -> None:
    """The hips-to-ankles region (the caller adds the hands that overlap it)."""
    if not (v[J["r_hip"]] or v[J["l_hip"]]):
        return
    right = np.array([-down[1], down[0]]) * -1.0
    hips = {s: p[J[f"{s}_hip"]] if v[J[f"{s}_hip"]] else None for s in ("r", "l")}
    if hips["r"] is None:
        hips["r"] = hips["l"] + 0.7 * sw * right
    if hips["l"] is None:
        hips["l"] = hips["r"] - 0.7 * sw * right
    waist = -0.25 * sw * down
    rh, lh = hips["r"] + 0.25 * sw * right + waist, hips["l"] - 0.25 * sw * right + waist
    ends = []
    for s, hip in (("r", hips["r"]), ("l", hips["l"])):
        chain = [hip] + [p[J[f"{s}_{k}"]] for k in ("knee", "ankle") if v[J[f"{s}_{k}"]]]
        if len(chain) < 3:  # the leg leaves the frame: continue it to the bottom edge
            chain.append(_far(chain[-1], down, height, width))
        _polyline(draw, chain, LEG_WIDTH * sw)
        ends.append(chain[-1])
    draw.polygon([tuple(rh), tuple(lh), tuple(ends[1]), tuple(ends[0])], fill=1)


def _hands(draw, p, v, sw, hands: tuple[HandPose, int] | None) -> None:
    if hands is not None:  # the hands' keypoints, an ellipse around each hand found
        pose, i = hands
        for side in range(2):
            if pose.present[i, side]:
                xy = pose.points[i, side, :, :2]
                lo, hi = xy.min(axis=0) - 0.1 * sw, xy.max(axis=0) + 0.1 * sw
                draw.ellipse((lo[0], lo[1], hi[0], hi[1]), fill=1)
    for name in ("r_hand", "l_hand"):  # and a disk at each hand joint of the body pose
        if v[J[name]]:
            c, r = p[J[name]], HAND_RADIUS * sw
            draw.ellipse((c[0] - r, c[1] - r, c[0] + r, c[1] + r), fill=1)


def _draw(size: tuple[int, int], paint) -> np.ndarray:
    canvas = Image.new("1", (size[1], size[0]), 0)
    paint(ImageDraw.Draw(canvas))
    return np.asarray(canvas, dtype=bool)


def frame_mask(
    pose: BodyPose,
    i: int,
    person: np.ndarray,
    category: str,
    parts: np.ndarray | None = None,
    hands: HandPose | None = None,
) -> np.ndarray:
    """Agnostic mask of frame ``i`` ``(H, W)`` bool; ``person`` ``(H, W)`` bool, ``parts`` LIP labels or None."""
    height, width = person.shape
    p, v = pose.points[i], pose.score[i] >= MASK_VISIBLE
    sw = _shoulder_width(p, v, height)
    down = _down(p, v, height)
    hand_arg = (hands, i) if hands is not None else None
    region = np.zeros((height, width), dtype=bool)
    if category in ("upper", "dress") and v[J["r_shoulder"]] and v[J["l_shoulder"]]:
        region |= _draw((height, width), lambda d: _upper(d, p, v, sw, down, height, width, hand_arg))
    if category in ("lower", "dress"):
        lower = _draw((height, width), lambda d: _lower(d, p, v, sw, down, height, width))
        hands_mask = _draw((height, width), lambda d: _hands(d, p, v, sw, hand_arg))
        grown = ndimage.binary_dilation(lower, iterations=max(1, int(0.1 * sw)))
        labels, _ = ndimage.label(hands_mask)
        over = np.unique(labels[grown & hands_mask])
        region |= lower | np.isin(labels, over[over > 0])  # hands over the lower garment, not those elsewhere
    if parts is not None:
        region |= np.isin(parts, [LIP[name] for name in PARTS[category]])
    if v[J["head"]]:  # never the head: a disk around it, as large as head-to-neck
        c = p[J["head"]]
        r = 0.8 * (np.linalg.norm(c - p[J["neck"]]) if v[J["neck"]] else 0.3 * sw)
        head = _draw((height, width), lambda d: d.ellipse((c[0] - r, c[1] - r, c[0] + r, c[1] + r), fill=1))
        keep_neck_down = np.indices((height, width))[0] > c[1] + 0.4 * r  # what lies below the chin stays
        region &= ~(head & ~keep_neck_down)
    margin = max(1, int(round(PERSON_MARGIN * sw)))
    region &= ndimage.binary_dilation(person, iterations=margin)
    step = max(1, margin // 2)  # closing that keeps what touches the frame's edges (scipy's erodes from outside)
    closed = ndimage.binary_erosion(ndimage.binary_dilation(region, iterations=step), iterations=step, border_value=1)
    return ndimage.binary_fill_holes(closed | region)


def agnostic_mask(
    pose: BodyPose, segmentation: Segmentation, category: str, hands: HandPose | None = None, threshold: float = 0.5
) -> np.ndarray:
    """``(T, H, W)`` bool: where the model must generate (see the module docstring)."""
    check_category(category)
    person = segmentation.person >= threshold
    parts = segmentation.parts
    return np.stack(
        [
            frame_mask(pose, i, person[i], category, None if parts is None else parts[i], hands)
            for i in range(len(person))
        ]
    )


def agnostic_video(frames: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(T, H, W, 3)`` uint8: the frames greyed (the synthetic world's fill) where ``mask`` ``(T, H, W)`` is True."""
    return np.where(mask[..., None], np.uint8(GREY), frames)
