"""``generate_clip``: one clip of the synthetic interactive try-on world, deterministic from (split, index, seed)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .captions import action_records, global_caption
from .families import check_family, plan_family_clip
from .plan import plan_clip
from .render import render_clip


def generate_clip(
    split: str,
    index: int,
    seed: int = 0,
    num_frames: int = 17,
    height: int = 48,
    width: int = 64,
    fps: float = 8.0,
    passive_fraction: float = 0.25,
    passive: bool | None = None,
    garment_class: str | None = None,
    garment_size: tuple[int, int] | None = None,
    family: str | None = None,
) -> dict[str, Any]:
    """Render clip ``(split, index, seed)``.

    Returns channels-first uint8 arrays ``[C, T, H, W]`` (video, counterfactual, agnostic, pose, hand_prior
    with C = 3; agnostic_mask, interaction_mask, counterfactual_mask with C = 1, values 0/255), the in-shop
    garment ``[3, Hg, Wg]`` and its mask ``[1, Hg, Wg]``, plus ``caption`` (str), ``actions`` (list of dicts with
    kind, start, end (exclusive), start_s, end_s, text, hand) and ``meta``.

    ``passive`` forces (True) or forbids (False) a passive-gesture clip and ``garment_class`` forces the
    class; other draws stay the same. ``hand_prior`` and ``pose`` encode values in [-1, 1] (128 = 0 = no hand),
    the others [0, 1]; :func:`itryon.data.manifest.sample_from_arrays` turns the dict into a contract sample.

    ``family`` (``contact``, ``caption``, ``timing``; see :mod:`.families`) renders clip ``index`` of that
    benchmark family instead, with ``meta`` recording ``family``, ``variant`` and ``pair``; ``None`` or
    ``"standard"`` gives the standard clips, unchanged. Families decide passivity themselves.
    """
    if num_frames < 1 or height < 8 or width < 8:
        raise ValueError(
            f"a clip needs num_frames >= 1 and height, width >= 8; got {num_frames} frames of {height}x{width}"
        )
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    family = check_family(family)
    if family is None:
        plan = plan_clip(split, index, seed, num_frames, height, width, fps, passive_fraction, passive, garment_class)
    elif passive is not None:
        raise ValueError(f"passive cannot be forced for family {family!r}: its pairs decide which clip is passive")
    else:
        plan = plan_family_clip(split, index, seed, family, num_frames, height, width, fps, garment_class)
    arrays = render_clip(plan, garment_size)
    actions = action_records(plan)
    tex = plan.garment.texture
    meta = {
        "id": plan.clip_id,
        "source": "synthetic",
        "split": split,
        "index": int(index),
        "seed": int(seed),
        "fps": float(fps),
        "num_frames": int(num_frames),
        "height": int(height),
        "width": int(width),
        "garment_class": plan.garment.garment_class,
        "passive": plan.passive,
        "texture_id": tex.texture_id,
        "pattern": tex.pattern,
        "palette": [int(s) for s in tex.sectors],
        "background": plan.background.kind,
        "counterfactual_actions": actions,
        "hand_depth": np.round(plan.tracks.depth, 4).tolist(),
        "hand_grip": plan.tracks.grip.tolist(),
        "hand_contact": plan.tracks.contact.tolist(),
    }
    if family is not None:
        meta.update(family=family, variant=plan.variant, pair=int(index) // 2)
        if plan.counter_events is not None:
            meta["counterfactual_actions"] = action_records(plan, plan.counter_events)
    return {**arrays, "caption": global_caption(plan), "actions": [] if plan.passive else actions, "meta": meta}
