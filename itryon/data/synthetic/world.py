"""``generate_clip``: one clip of the synthetic interactive try-on world, deterministic from (split, index, seed)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .captions import action_records, global_caption
from .families import check_family, plan_family_clip
from .plan import plan_clip
from .render import render_clip
from .spec import ClipSpec


def generate_clip(
    split: str,
    index: int,
    seed: int = 0,
    spec: ClipSpec = ClipSpec(),
    *,
    passive: bool | None = None,
    garment_class: str | None = None,
    family: str | None = None,
) -> dict[str, Any]:
    """Render clip ``(split, index, seed)`` of the size and timing ``spec``.

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
    family = check_family(family)
    if family is None:
        plan = plan_clip(split, index, seed, spec, passive, garment_class)
    elif passive is not None:
        raise ValueError(f"passive cannot be forced for family {family!r}: its pairs decide which clip is passive")
    else:
        plan = plan_family_clip(split, index, seed, family, spec, garment_class)
    arrays = render_clip(plan, spec.garment_size)
    actions = action_records(plan)
    tex = plan.garment.texture
    meta = {
        "id": plan.clip_id,
        "source": "synthetic",
        "split": split,
        "index": int(index),
        "seed": int(seed),
        "fps": float(spec.fps),
        "num_frames": int(spec.num_frames),
        "height": int(spec.height),
        "width": int(spec.width),
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
