"""Rendering a planned clip: the video, its counterfactual, the conditions and the masks, all as uint8 arrays.

Layers, back to front: background, body (torso skin or undershirt, trousers, neck, head, hair), the
garment's torso panel (the only layer the actions change), then a front layer with arms, sleeves and
hands. The clip and its counterfactual share every layer except the panel, and the panel differs only
where a deformation field is non-zero, which is what ``interaction_mask`` marks.
"""

from __future__ import annotations

import math

import numpy as np

from .actions import ACTION_KINDS, envelope
from .garments import GarmentSpec, paint_sleeve
from .hands import HandRender, hand_prior, render_hands
from .plan import ClipPlan
from .raster import F32, Layer, Window, capsule, coverage, disk_offsets, ellipse_sdf, over, pixel_grid, splat
from .rig import LEFT, RIGHT, BodyShape, solve_arm

AGNOSTIC_HALF_WIDTH = 0.3  # garment-agnostic box around the torso, body units
AGNOSTIC_TOP = 0.265
WRIST_OFFSET = 0.03  # hand centre -> wrist, along the fingers
# pose joints: head, neck, right shoulder/elbow/wrist, left shoulder/elbow/wrist, right hip, left hip, right hand, left hand
POSE_LIMBS = ((0, 1), (1, 2), (2, 3), (3, 4), (4, 10), (1, 5), (5, 6), (6, 7), (7, 11), (1, 8), (1, 9))
POSE_COLOURS = (
    (1.0, 0.0, 0.0), (1.0, 0.45, 0.0), (1.0, 0.85, 0.0), (0.6, 1.0, 0.0), (0.2, 1.0, 0.3), (0.0, 1.0, 0.7),
    (0.0, 0.8, 1.0), (0.0, 0.35, 1.0), (0.3, 0.0, 1.0), (0.75, 0.0, 1.0), (1.0, 0.0, 0.6),
)


def to_uint8(x: np.ndarray, low: float = 0.0) -> np.ndarray:
    """[0, 1] (``low=0``) or [-1, 1] (``low=-1``) float -> uint8, rounding half up like ``video_io.to_uint8``."""
    scale = F32(255.0 / (1.0 - low))
    y = (x - F32(low)) * scale if low else x * scale
    y += F32(0.5)
    np.clip(y, F32(0.0), F32(255.0), out=y)
    return y.astype(np.uint8)  # truncation of non-negative values is the floor


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
        elbow, wrist = solve_arm(shoulder, centre - WRIST_OFFSET * direction, body.upper_arm, body.forearm, side=(-1.0, 1.0)[hand])
        joints[:, s_i] = shoulder
        joints[:, e_i] = elbow
        joints[:, w_i] = wrist
        joints[:, h_i] = centre
        arms[hand] = (shoulder, elbow, wrist)
    return joints, arms


def _per_frame(v: np.ndarray) -> np.ndarray:
    return v.astype(F32)[:, None, None]


def _body_layers(plan: ClipPlan, image: np.ndarray, bx: np.ndarray, by: np.ndarray, ppu: float) -> None:
    """Paint torso and trousers onto ``image`` ``(3, T, H, W)``, then neck, head and hair on a window around the head."""
    body, look = plan.body, plan.appearance
    skin = np.asarray(look.skin[1], dtype=F32)
    half_width = body.torso_half_width(by)
    torso = np.maximum(np.abs(bx) - half_width, body.torso_top_at(bx) - by)
    under = look.undershirt[1] if plan.garment.garment_class == "jacket" else look.skin[1]
    over(image, under, coverage(torso, ppu))
    trousers = np.maximum(np.abs(bx) - half_width - F32(0.012), F32(plan.garment.hem_y + 0.025) - by)
    over(image, look.trousers[1], coverage(trousers, ppu))

    t_count, h, w = bx.shape
    corners = np.array([[-0.11, body.head_y - body.head_ry - 0.01], [0.11, body.torso_top + 0.03]])
    px = plan.motion.to_pixels(np.broadcast_to(np.array([corners[0], corners[1], [corners[0, 0], corners[1, 1]], [corners[1, 0], corners[0, 1]]]), (t_count, 4, 2)), h, w)
    window = Window(px[..., 0].min(1) - 1, px[..., 0].max(1) + 1, px[..., 1].min(1) - 1, px[..., 1].max(1) + 1, h, w)
    hx, hy = plan.motion.body_grid(window.px, window.py)
    patch = window.gather(image)
    neck = np.maximum(np.abs(hx) - F32(body.neck_half), np.maximum(F32(body.head_y + 0.05) - hy, hy - F32(body.torso_top + 0.02)))
    over(patch, skin * F32(0.85), coverage(neck, ppu))
    head = ellipse_sdf(hx, hy, F32(0.0), F32(body.head_y), F32(body.head_rx), F32(body.head_ry))
    over(patch, skin, coverage(head, ppu))
    hair = np.maximum(
        ellipse_sdf(hx, hy, F32(0.0), F32(body.head_y - 0.02), F32(body.head_rx + 0.008), F32(body.head_ry * 0.85)),
        hy - F32(body.head_y - 0.025) - F32(0.25) * np.abs(hx),
    )
    over(patch, look.hair[1], coverage(hair, ppu))
    window.scatter(image, patch)


def _front_layer(plan: ClipPlan, arms: dict, hands: list[HandRender], ppu: float) -> tuple[Layer, np.ndarray]:
    """Arms, sleeves and hands as one premultiplied layer ``(3, T, H, W)``, and the arms' and hands' dilated silhouette.

    Each arm and hand is drawn on a per-frame window around it and written back into the full layer.
    """
    body, garment, motion = plan.body, plan.garment, plan.motion
    t_count, h, w = plan.num_frames, plan.height, plan.width
    skin = np.asarray(plan.appearance.skin[1], dtype=F32)
    layer = Layer((t_count, h, w))
    region = np.zeros((t_count, h, w), dtype=bool)
    for hand in (RIGHT, LEFT):
        shoulder, elbow, wrist = arms[hand]
        points = np.stack([np.broadcast_to(np.asarray(shoulder, dtype=float), elbow.shape), elbow, wrist], axis=1)  # (T, 3, 2)
        px = motion.to_pixels(points, h, w)
        margin = (body.upper_radius + 0.03) * ppu * 1.2 + 1.0
        window = Window(px[..., 0].min(1) - margin, px[..., 0].max(1) + margin, px[..., 1].min(1) - margin, px[..., 1].max(1) + margin, h, w)
        bx, by = motion.body_grid(window.px, window.py)
        patch = Layer(window.shape)
        patch.rgb, patch.alpha = window.gather(layer.rgb), window.gather(layer.alpha)
        near = window.gather(region)
        s = (F32(shoulder[0]), F32(shoulder[1]))
        e = (_per_frame(elbow[:, 0]), _per_frame(elbow[:, 1]))
        wr = (_per_frame(wrist[:, 0]), _per_frame(wrist[:, 1]))
        for which, (a, b, radius) in enumerate(((s, e, body.upper_radius), (e, wr, body.fore_radius))):
            arm = capsule(bx, by, a[0], a[1], b[0], b[1])
            shade = F32(1.0) - F32(50.0) * arm[2] * arm[2]
            patch.paint([c * shade for c in skin], coverage(arm[0] - F32(radius), ppu))
            length = np.sqrt((b[0] - a[0]) * (b[0] - a[0]) + (b[1] - a[1]) * (b[1] - a[1]))
            paint_sleeve(patch, garment, body, arm, length, which, ppu)
            near |= arm[0] < F32(radius + 0.025)
        window.scatter(layer.rgb, patch.rgb)
        window.scatter(layer.alpha, patch.alpha)
        window.scatter(region, near)
    for hand in hands:
        patch = Layer(hand.window.shape)
        patch.rgb, patch.alpha = hand.window.gather(layer.rgb), hand.window.gather(layer.alpha)
        shade = F32(0.7) + F32(0.3) * hand.nz
        patch.paint([c * shade for c in skin], hand.alpha)
        hand.window.scatter(layer.rgb, patch.rgb)
        hand.window.scatter(layer.alpha, patch.alpha)
        hand.window.scatter(region, hand.window.gather(region) | (hand.alpha > 0))
    return layer, region


def _panel(garment: GarmentSpec, body: BodyShape, gx, gy, pull_y, ppu: float, cut=None, fold=None) -> tuple[np.ndarray, np.ndarray]:
    """Torso-panel coverage ``(...)`` and RGB ``(3, ...)`` at garment coordinates."""
    d = garment.panel_sdf(body, gx, gy)
    if cut is not None:
        d = np.maximum(d, cut)
    return coverage(d, ppu), garment.panel_colour(body, gx, gy, pull_y, fold)


def _deformed_panel(plan: ClipPlan, bx, by, ppu: float, rest_cov, rest_rgb):
    """The panel with every event's deformation, and the support of the deformation ``(T, H, W)`` bool."""
    garment, body, t_count = plan.garment, plan.body, plan.num_frames
    cov, rgb = rest_cov.copy(), rest_rgb.copy()
    support = np.zeros(bx.shape, dtype=bool)
    envelopes = [envelope(e, t_count, ACTION_KINDS[e.kind].persists) for e in plan.events]
    active = np.flatnonzero(np.any(np.stack(envelopes), axis=0)) if envelopes else np.zeros(0, dtype=np.int64)
    if active.size == 0:
        return cov, rgb, support
    t0, t1 = int(active[0]), int(active[-1]) + 1
    sx, sy = bx[t0:t1], by[t0:t1]
    dx, dy, fold = np.zeros_like(sx), np.zeros_like(sx), np.zeros_like(sx)
    cut = None
    pull_y = F32(garment.zip_top + 0.02)
    block_support = np.zeros(sx.shape, dtype=bool)
    for event, a in zip(plan.events, envelopes):
        deformation = ACTION_KINDS[event.kind].field(event, garment, sx, sy, _per_frame(a[t0:t1]))
        dx += deformation.dx
        dy += deformation.dy
        fold += deformation.fold
        block_support |= deformation.support
        if deformation.cut is not None:
            cut = deformation.cut if cut is None else np.maximum(cut, deformation.cut)
            pull_y = deformation.pull_y
    cov[t0:t1], rgb[:, t0:t1] = _panel(garment, body, sx - dx, sy - dy, pull_y, ppu, cut, np.minimum(fold, F32(1.0)))
    support[t0:t1] = block_support
    return cov, rgb, support


def _torso_window(plan: ClipPlan) -> Window:
    """Per-frame windows holding every pixel the torso panel can reach, deformed or not."""
    t_count, h, w = plan.num_frames, plan.height, plan.width
    top, bottom, half = 0.26, plan.garment.hem_y + 0.04, 0.36
    corners = np.array([[-half, top], [half, top], [-half, bottom], [half, bottom]])
    px = plan.motion.to_pixels(np.broadcast_to(corners, (t_count, 4, 2)), h, w)
    return Window(px[..., 0].min(1) - 1, px[..., 0].max(1) + 1, px[..., 1].min(1) - 1, px[..., 1].max(1) + 1, h, w)


def _full(window: Window, values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Window values placed in a zero array of the full ``shape``."""
    full = np.zeros(shape, dtype=values.dtype)
    window.scatter(full, values)
    return full


def _pose(plan: ClipPlan, joints: np.ndarray) -> np.ndarray:
    """2D skeleton ``(3, T, H, W)`` in [0, 1] on black (garment-agnostic: drawn from joints only)."""
    h, w = plan.height, plan.width
    image = np.zeros((3, plan.num_frames, h, w), dtype=F32)
    pixels = plan.motion.to_pixels(joints, h, w)  # (T, 12, 2)
    steps = np.linspace(0.0, 1.0, max(8, int(0.6 * h)))[None, :, None]
    line = disk_offsets(max(0.5, h / 96.0))
    for (i, j), colour in zip(POSE_LIMBS, POSE_COLOURS):
        a, b = pixels[:, i : i + 1], pixels[:, j : j + 1]
        splat(image, a + steps * (b - a), colour, line)
    dot = disk_offsets(max(1.0, h / 40.0))
    splat(image, pixels, (1.0, 1.0, 1.0), dot)
    return image


def _in_shop(plan: ClipPlan, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The flat in-shop garment image ``(3, Hg, Wg)`` on white and its mask ``(Hg, Wg)`` bool (any coverage)."""
    garment, body = plan.garment, plan.body
    px, py = pixel_grid(height, width)
    span = F32(0.86)  # body units across the image height
    gx, gy = px * span, F32(0.6) + (py - F32(0.5)) * span
    ppu = height / float(span)
    layer = Layer(px.shape)
    for hand in (RIGHT, LEFT):
        side = (-1.0, 1.0)[hand]
        sx, sy = body.shoulder(hand)
        sx -= side * 0.02
        ex, ey = sx + side * body.upper_arm * math.sin(0.6), sy + body.upper_arm * math.cos(0.6)
        wx, wy = ex + side * body.forearm * math.sin(0.6), ey + body.forearm * math.cos(0.6)
        for which, (ax, ay, bx, by) in enumerate(((sx, sy, ex, ey), (ex, ey, wx, wy))):
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
    bx, by = plan.motion.body_grid(px, py)  # (T, H, W)
    ppu = h * plan.motion.scale

    # 1. background and body
    base = np.broadcast_to(plan.background.render(px, py)[:, None], (3, t_count, h, w)).copy()
    _body_layers(plan, base, bx, by, ppu)

    # 2. arms, sleeves and hands (identical in the clip and its counterfactual)
    joints, arms = _joints(plan)
    hands = render_hands(plan.tracks, plan.motion, h, w, ppu)
    front, limbs = _front_layer(plan, arms, hands, ppu)

    # 3. the torso panel at rest and deformed; the clip shows one, the counterfactual the other
    window = _torso_window(plan)
    wx, wy = plan.motion.body_grid(window.px, window.py)  # (T, h, w)
    rest = _panel(plan.garment, plan.body, wx, wy, F32(plan.garment.zip_top + 0.02), ppu)
    moved_cov, moved_rgb, support = _deformed_panel(plan, wx, wy, ppu, *rest)
    region = np.zeros((t_count, h, w), dtype=bool)
    window.scatter(region, support & ((rest[0] > 0) | (moved_cov > 0)))  # (T, H, W): where the two panels may differ
    rest_cov, rest_rgb = _full(window, rest[0], (t_count, h, w)), _full(window, rest[1], (3, t_count, h, w))
    moved_cov, moved_rgb = _full(window, moved_cov, (t_count, h, w)), _full(window, moved_rgb, (3, t_count, h, w))
    shown, other = ((rest_cov, rest_rgb), (moved_cov, moved_rgb)) if plan.passive else ((moved_cov, moved_rgb), (rest_cov, rest_rgb))
    video = front.composite(over(base.copy(), shown[1], shown[0]))
    counterfactual = front.composite(over(base, other[1], other[0]))

    # 4. garment-agnostic conditions
    box = (np.abs(bx) < F32(AGNOSTIC_HALF_WIDTH)) & (by > F32(AGNOSTIC_TOP))
    agnostic_mask = box | limbs
    agnostic = np.where(agnostic_mask, F32(0.5), video)
    interaction_mask = np.zeros_like(region) if plan.passive else region

    garment_h, garment_w = garment_size or (h, w)
    garment, garment_mask = _in_shop(plan, garment_h, garment_w)
    return {
        "video": to_uint8(video),
        "counterfactual": to_uint8(counterfactual),
        "agnostic": to_uint8(agnostic),
        "agnostic_mask": agnostic_mask[None].astype(np.uint8) * 255,
        "pose": to_uint8(_pose(plan, joints)),
        "hand_prior": to_uint8(hand_prior(hands, (t_count, h, w)), low=-1.0),
        "interaction_mask": interaction_mask[None].astype(np.uint8) * 255,
        "counterfactual_mask": region[None].astype(np.uint8) * 255,
        "garment": to_uint8(garment),
        "garment_mask": garment_mask[None].astype(np.uint8) * 255,
    }
