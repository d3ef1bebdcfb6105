"""Rendering a planned clip: the video, its counterfactual, the conditions and the masks, all as uint8 arrays.

Layers, back to front: background, body (torso skin or undershirt, trousers, neck, head, hair), the
garment's torso panel (the only layer the actions change), then a front layer with arms, sleeves and
hands. The clip and its counterfactual share every layer except the panel, and the panel differs only
where a deformation field is non-zero, which is what ``interaction_mask`` marks.

Each part is drawn only on the box of pixels it can reach during the clip (:class:`.raster.Box`), through
views of the frame-sized arrays; outside its box a part has zero coverage, so leaving those pixels alone
changes no value. The counterfactual is the video with the panel redrawn on the frames where it differs.
"""

from __future__ import annotations

import math

import numpy as np

from ..pixels import to_uint8
from .actions import action_kind, envelope
from .garments import GarmentSpec, paint_sleeve
from .hands import NO_HAND, HandRender, prior_frames, render_hands  # noqa: F401 - NO_HAND re-exported
from .plan import ClipPlan
from .raster import F32, Box, Layer, capsule, coverage, ellipse_sdf, over, pixel_grid
from .rig import LEFT, RIGHT, BodyShape, solve_arm
from .skeleton import POSE_COLOURS, POSE_LIMBS, POSE_PALETTE, draw_pose  # noqa: F401 - the palette re-exported

AGNOSTIC_HALF_WIDTH = 0.3  # garment-agnostic box around the torso, body units
AGNOSTIC_TOP = 0.265
WRIST_OFFSET = 0.03  # hand centre -> wrist, along the fingers


GREY = int(to_uint8(np.array([0.5], dtype=F32), low=0.0)[0])  # the agnostic fill


def _mask_uint8(mask: np.ndarray) -> np.ndarray:
    """bool ``(...)`` -> uint8 ``(1, ...)`` with 0 and 255."""
    return np.multiply(mask.view(np.uint8)[None], np.uint8(255))  # a bool array holds 0/1 bytes


def _joints(plan: ClipPlan) -> tuple[np.ndarray, dict]:
    """Pose joints ``(T, 12, 2)`` in body coordinates and the arm segments for rendering."""
    body, tracks, t_count = plan.body, plan.tracks, plan.num_frames
    joints = np.zeros((t_count, 12, 2))
    joints[:, 0] = 0.0, body.head_y
    joints[:, 1] = 0.0, body.torso_top - 0.03
    joints[:, 8] = -0.11, 0.98
    joints[:, 9] = 0.11, 0.98
    arms = {}
    for hand, (s_i, e_i, w_i, h_i) in ((RIGHT, (2, 3, 4, 10)), (LEFT, (5, 6, 7, 11))):
        centre = tracks.center[hand]
        direction = np.array([[math.cos(a), math.sin(a)] for a in tracks.angle[hand]])
        shoulder = body.shoulder(hand)
        elbow, wrist = solve_arm(
            shoulder, centre - WRIST_OFFSET * direction, body.upper_arm, body.forearm, side=(-1.0, 1.0)[hand]
        )
        joints[:, s_i] = shoulder
        joints[:, e_i] = elbow
        joints[:, w_i] = wrist
        joints[:, h_i] = centre
        arms[hand] = (shoulder, elbow, wrist)
    return joints, arms


def _per_frame(v: np.ndarray) -> np.ndarray:
    return v.astype(F32)[:, None, None]


def _torso_box(plan: ClipPlan) -> Box:
    """The box of every pixel the torso, the trousers, the garment panel (deformed or not) and the agnostic box can reach.

    In body units that is ``|x| <= 0.34`` (the widest garment, 0.25, stretched sideways by up to 0.075, plus
    the anti-aliasing ramp) from ``y = 0.25`` down to the bottom of the frame (torso and trousers have no
    lower edge).
    """
    t_count, h, w = plan.num_frames, plan.height, plan.width
    m = plan.motion.to_body  # (T, 2, 3): frame units -> body units
    bottom = (
        float(np.max(np.abs(m[:, 1, 0]) * (w / (2.0 * h)) + m[:, 1, 1] + m[:, 1, 2])) + 0.05
    )  # below every bottom corner
    corners = np.array([[-0.34, 0.25], [0.34, 0.25], [-0.34, bottom], [0.34, bottom]])
    box = Box.around(plan.motion.to_pixels(np.broadcast_to(corners, (t_count, 4, 2)), h, w), 1.0, h, w)
    return Box(box.y0, h, box.x0, box.x1, h, w)


def _body_layers(plan: ClipPlan, image: np.ndarray, box: Box, bx: np.ndarray, by: np.ndarray, ppu: float) -> None:
    """Paint torso and trousers onto ``image`` ``(3, T, H, W)`` inside ``box`` (body grid ``bx``, ``by``), then neck, head and hair inside a box around the head."""
    body, look = plan.body, plan.appearance
    skin = np.asarray(look.skin[1], dtype=F32)
    torso_part = box.of(image).copy()  # (3, T, h, w), contiguous
    half_width = body.torso_half_width(by)
    torso = np.maximum(np.abs(bx) - half_width, body.torso_top_at(bx) - by)
    under = look.undershirt[1] if plan.garment.garment_class == "jacket" else look.skin[1]
    over(torso_part, under, coverage(torso, ppu))
    trousers = np.maximum(np.abs(bx) - half_width - F32(0.012), F32(plan.garment.hem_y + 0.025) - by)
    over(torso_part, look.trousers[1], coverage(trousers, ppu))
    box.of(image)[...] = torso_part

    t_count, h, w = plan.num_frames, plan.height, plan.width
    corners = np.array([[-0.11, body.head_y - body.head_ry - 0.01], [0.11, body.torso_top + 0.03]])
    px = plan.motion.to_pixels(
        np.broadcast_to(
            np.array([corners[0], corners[1], [corners[0, 0], corners[1, 1]], [corners[1, 0], corners[0, 1]]]),
            (t_count, 4, 2),
        ),
        h,
        w,
    )
    head_box = Box.around(px, 1.0, h, w)
    hx, hy = plan.motion.body_grid(head_box.px, head_box.py)
    patch = head_box.of(image).copy()
    neck = np.maximum(
        np.abs(hx) - F32(body.neck_half), np.maximum(F32(body.head_y + 0.05) - hy, hy - F32(body.torso_top + 0.02))
    )
    over(patch, skin * F32(0.85), coverage(neck, ppu))
    head = ellipse_sdf(hx, hy, F32(0.0), F32(body.head_y), F32(body.head_rx), F32(body.head_ry))
    over(patch, skin, coverage(head, ppu))
    hair = np.maximum(
        ellipse_sdf(hx, hy, F32(0.0), F32(body.head_y - 0.02), F32(body.head_rx + 0.008), F32(body.head_ry * 0.85)),
        hy - F32(body.head_y - 0.025) - F32(0.25) * np.abs(hx),
    )
    over(patch, look.hair[1], coverage(hair, ppu))
    head_box.of(image)[...] = patch


def _front_layer(plan: ClipPlan, arms: dict, hands: list[HandRender], ppu: float) -> tuple[Layer, np.ndarray, Box]:
    """Arms, sleeves and hands as one premultiplied layer ``(3, T, H, W)``, the arms' and hands' dilated silhouette ``(T, H, W)``, and the box holding them.

    Each arm segment and each hand is drawn on its own box, in a fixed order: right arm, left arm, hands.
    """
    body, garment, motion = plan.body, plan.garment, plan.motion
    t_count, h, w = plan.num_frames, plan.height, plan.width
    skin = np.asarray(plan.appearance.skin[1], dtype=F32).reshape(3, 1, 1, 1)
    layer = Layer((t_count, h, w))
    region = np.zeros((t_count, h, w), dtype=bool)
    boxes = []
    for hand in (RIGHT, LEFT):
        shoulder, elbow, wrist = arms[hand]
        points = np.stack(
            [np.broadcast_to(np.asarray(shoulder, dtype=float), elbow.shape), elbow, wrist], axis=1
        )  # (T, 3, 2)
        px = motion.to_pixels(points, h, w)
        margin = (
            body.upper_radius + 0.025
        ) * ppu * 1.02 + 0.5  # farthest reach (the silhouette), breathing scales by <= 1.5%
        s = (F32(shoulder[0]), F32(shoulder[1]))
        e = (_per_frame(elbow[:, 0]), _per_frame(elbow[:, 1]))
        wr = (_per_frame(wrist[:, 0]), _per_frame(wrist[:, 1]))
        for which, (a, b, radius) in enumerate(((s, e, body.upper_radius), (e, wr, body.fore_radius))):
            box = Box.around(px[:, which : which + 2], margin, h, w)  # around the segment's two joints
            bx, by = motion.body_grid(box.px, box.py)  # (T, h, w)
            patch = layer.take(box)
            arm = capsule(bx, by, a[0], a[1], b[0], b[1])
            shade = F32(1.0) - F32(50.0) * arm[2] * arm[2]
            patch.paint(skin * shade, coverage(arm[0] - F32(radius), ppu))
            length = np.sqrt((b[0] - a[0]) * (b[0] - a[0]) + (b[1] - a[1]) * (b[1] - a[1]))
            paint_sleeve(patch, garment, body, arm, length, which, ppu)
            layer.put(box, patch)
            near = box.of(region)
            near |= arm[0] < F32(radius + 0.025)
            boxes.append(box)
    for hand in hands:
        patch = layer.take(hand.box)
        patch.paint(skin * (F32(0.7) + F32(0.3) * hand.nz), hand.alpha)
        layer.put(hand.box, patch)
        near = hand.box.of(region)
        near |= hand.alpha > 0
        boxes.append(hand.box)
    front = boxes[0]
    for box in boxes[1:]:
        front = front.union(box)
    return layer, region, front


def _panel(
    garment: GarmentSpec, body: BodyShape, gx, gy, pull_y, ppu: float, cut=None, fold=None
) -> tuple[np.ndarray, np.ndarray]:
    """Torso-panel coverage ``(...)`` and RGB ``(3, ...)`` at garment coordinates."""
    hw = np.asarray(garment.half_width(body, gy), dtype=F32)
    d = garment.panel_sdf(body, gx, gy, hw)
    if cut is not None:
        d = np.maximum(d, cut)
    return coverage(d, ppu), garment.panel_colour(body, gx, gy, pull_y, fold, hw)


def _active_frames(plan: ClipPlan, events) -> tuple[int, int]:
    """``[t0, t1)``: the frames where any envelope of ``events`` is non-zero, ``(0, 0)`` if none is."""
    envelopes = [envelope(e, plan.num_frames, action_kind(e.kind).persists) for e in events]
    active = np.flatnonzero(np.any(np.stack(envelopes), axis=0)) if envelopes else np.zeros(0, dtype=np.int64)
    return (int(active[0]), int(active[-1]) + 1) if active.size else (0, 0)


def _deformed_panel(
    plan: ClipPlan, events, t0: int, t1: int, bx, by, ppu: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The panel under the deformation of ``events`` on the frames ``[t0, t1)``.

    Returns ``(coverage (t, h, w), RGB (3, t, h, w), support (t, h, w) bool)``, or None for no events (the
    panel at rest). Outside their envelopes the events leave the panel at rest.
    """
    if not events:
        return None
    garment, body, t_count = plan.garment, plan.body, plan.num_frames
    envelopes = [envelope(e, t_count, action_kind(e.kind).persists) for e in events]
    sx, sy = bx[t0:t1], by[t0:t1]
    dx, dy, fold = np.zeros_like(sx), np.zeros_like(sx), np.zeros_like(sx)
    cut = None
    pull_y = F32(garment.zip_top + 0.02)
    support = np.zeros(sx.shape, dtype=bool)
    for event, a in zip(events, envelopes):
        deformation = action_kind(event.kind).field(event, garment, sx, sy, _per_frame(a[t0:t1]))
        dx += deformation.dx
        dy += deformation.dy
        fold += deformation.fold
        support |= deformation.support
        if deformation.cut is not None:
            cut = deformation.cut if cut is None else np.maximum(cut, deformation.cut)
            pull_y = deformation.pull_y
    cov, rgb = _panel(garment, body, sx - dx, sy - dy, pull_y, ppu, cut, np.minimum(fold, F32(1.0)))
    return cov, rgb, support


def _pose(plan: ClipPlan, joints: np.ndarray) -> np.ndarray:
    """2D skeleton uint8 ``(3, T, H, W)`` on black (garment-agnostic: drawn from joints only), by the renderer real clips use too."""
    return draw_pose(plan.motion.to_pixels(joints, plan.height, plan.width), plan.height, plan.width)


def _in_shop(plan: ClipPlan, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The flat in-shop garment image ``(3, Hg, Wg)`` on white and its mask ``(Hg, Wg)`` bool (any coverage)."""
    garment, body = plan.garment, plan.body
    px, py = pixel_grid(height, width)
    span = F32(0.86)  # body units across the image height
    gx, gy = px * span, F32(0.6) + (py - F32(0.5)) * span
    ppu = height / float(span)
    layer = Layer(px.shape)
    sleeves = garment.sleeve_segments(body)
    for hand in (RIGHT, LEFT):
        side = (-1.0, 1.0)[hand]
        sx, sy = body.shoulder(hand)
        sx -= side * 0.02
        ex, ey = sx + side * body.upper_arm * math.sin(0.6), sy + body.upper_arm * math.cos(0.6)
        wx, wy = ex + side * body.forearm * math.sin(0.6), ey + body.forearm * math.cos(0.6)
        for which, (ax, ay, bx, by) in enumerate(((sx, sy, ex, ey), (ex, ey, wx, wy))):
            if sleeves[which][0] > 0.0:
                arm = capsule(gx, gy, F32(ax), F32(ay), F32(bx), F32(by))
                paint_sleeve(layer, garment, body, arm, F32(math.hypot(bx - ax, by - ay)), which, ppu)
    cov, rgb = _panel(garment, body, gx, gy, F32(garment.zip_top + 0.02), ppu)
    layer.paint(rgb, cov)
    image = layer.composite(np.ones((3, height, width), dtype=F32))
    return image, layer.alpha > 0


def render_clip(plan: ClipPlan, garment_size: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """All pixel outputs of a clip as channels-first uint8 arrays ``[C, T, H, W]`` (``C`` = 3, or 1 for masks) and the garment ``[C, Hg, Wg]``.

    Keys: video, counterfactual, agnostic, agnostic_mask, pose, hand_prior, interaction_mask,
    counterfactual_mask, garment, garment_mask. ``hand_prior`` and ``pose`` encode [-1, 1]; the rest [0, 1].
    """
    t_count, h, w = plan.num_frames, plan.height, plan.width
    px, py = pixel_grid(h, w)
    ppu = h * plan.motion.scale

    # 1. background and body
    image = np.empty((3, t_count, h, w), dtype=F32)
    image[...] = plan.background.render(px, py)[:, None]
    torso_box = _torso_box(plan)
    bx, by = plan.motion.body_grid(torso_box.px, torso_box.py)  # (T, h, w) on the torso box
    _body_layers(plan, image, torso_box, bx, by, ppu)

    # 2. arms, sleeves and hands (identical in the clip and its counterfactual)
    joints, arms = _joints(plan)
    hands = render_hands(plan.tracks, plan.motion, h, w, ppu)
    front, limbs, front_box = _front_layer(plan, arms, hands, ppu)

    # 3. the torso panel at rest and, on frames [t0, t1), deformed; the clip shows one, the counterfactual the other
    rest_cov, rest_rgb = _panel(plan.garment, plan.body, bx, by, F32(plan.garment.zip_top + 0.02), ppu)
    t0, t1 = _active_frames(plan, plan.events + (plan.counter_events or ()))
    torso = torso_box.of(image).copy()  # (3, T, h, w), contiguous
    counter = torso[:, t0:t1].copy()  # the body under the panel while the two panels differ
    over(torso[:, :t0], rest_rgb[:, :t0], rest_cov[:t0])
    over(torso[:, t1:], rest_rgb[:, t1:], rest_cov[t1:])
    region = np.zeros((t_count, h, w), dtype=bool)  # where the two panels may differ
    if t1 > t0:
        rest = rest_cov[t0:t1], rest_rgb[:, t0:t1], np.zeros(rest_cov[t0:t1].shape, dtype=bool)
        shown = _deformed_panel(plan, plan.shown_events, t0, t1, bx, by, ppu) or rest  # (coverage, RGB, support)
        other = _deformed_panel(plan, plan.counterfactual_events, t0, t1, bx, by, ppu) or rest
        over(torso[:, t0:t1], shown[1], shown[0])
        over(counter, other[1], other[0])
        torso_box.of(region)[t0:t1] = (shown[2] | other[2]) & ((shown[0] > 0) | (other[0] > 0))
        counter *= F32(1.0) - torso_box.of(front.alpha)[t0:t1]  # the front layer over the counterfactual panel
        counter += torso_box.of(front.rgb)[:, t0:t1]
    torso_box.of(image)[...] = torso
    front.view(front_box).composite(front_box.of(image))
    video = to_uint8(image, low=0.0, in_place=True)
    counterfactual = video.copy()
    torso_box.of(counterfactual)[:, t0:t1] = to_uint8(counter, low=0.0, in_place=True)

    # 4. garment-agnostic conditions
    agnostic_mask = np.zeros((t_count, h, w), dtype=bool)
    torso_box.of(agnostic_mask)[...] = (np.abs(bx) < F32(AGNOSTIC_HALF_WIDTH)) & (by > F32(AGNOSTIC_TOP))
    agnostic_mask |= limbs
    agnostic = np.where(agnostic_mask, np.uint8(GREY), video)
    interaction_mask = np.zeros_like(region) if plan.passive else region
    prior_u8 = prior_frames(hands, t_count, h, w)

    garment_h, garment_w = garment_size or (h, w)
    garment, garment_mask = _in_shop(plan, garment_h, garment_w)
    return {
        "video": video,
        "counterfactual": counterfactual,
        "agnostic": agnostic,
        "agnostic_mask": _mask_uint8(agnostic_mask),
        "pose": _pose(plan, joints),
        "hand_prior": prior_u8,
        "interaction_mask": _mask_uint8(interaction_mask),
        "counterfactual_mask": _mask_uint8(region),
        "garment": to_uint8(garment, low=0.0, in_place=True),
        "garment_mask": _mask_uint8(garment_mask),
    }
