"""Benchmark families: clips in which exactly one part of the method carries what the output needs.

Clips of a family come in pairs: clip ``index`` is side ``index % 2`` of pair ``index // 2``. The two
sides share every random draw (person, garment, background, body motion, gesture and its span) and
differ only in what the family isolates; each clip's counterfactual is what the other side (or the
other reading) would show:

- ``contact`` (3D hand prior): side ``contact`` touches the garment and it responds (an action; the
  counterfactual has no response); side ``hover`` makes the same gesture with the same 2D path and
  grip, in front of the garment (a passive clip; the counterfactual shows the response). The video's
  hand and the 2D pose are identical; only the hand prior's depth shading and the captions differ.
- ``caption`` (action captions): a pinch held still at the hem; side ``lift`` lifts the hem, side
  ``stretch`` stretches it down (the counterfactual: the other response). The hand is the same in 2D
  and 3D; only the action caption tells.
- ``timing`` (time alignment of the captions, A-RoPE): two pinches at the same point in two spans,
  one lifting, one stretching; side ``lift_first`` lifts first, ``stretch_first`` stretches first (the
  counterfactual: the responses swapped between the spans). Both sides have the same two captions;
  only their time spans tell which response belongs to which span.

Clips without a family are the ``standard`` clips of :func:`.plan.plan_clip`, unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .actions import ACTION_KINDS, FAMILY_KINDS
from .hands import build_tracks
from .plan import ClipPlan, sample_scene
from .seeding import clip_streams
from .spec import ClipSpec
from .splits import check_split, combination_allowed

STANDARD = "standard"
FAMILIES = (STANDARD, "contact", "caption", "timing")
BENCHMARK_FAMILIES = FAMILIES[1:]
VARIANTS = {"contact": ("contact", "hover"), "caption": ("lift", "stretch"), "timing": ("lift_first", "stretch_first")}
MIN_FRAMES = {"contact": 5, "caption": 5, "timing": 10}
LIFT, STRETCH = FAMILY_KINDS["pinch_lift_hem"], FAMILY_KINDS["pinch_stretch_hem"]


def check_family(family: str | None) -> str | None:
    """``None`` for the standard clips (``None`` or ``"standard"``), else the benchmark family's name."""
    if family is None or family == STANDARD:
        return None
    if family not in BENCHMARK_FAMILIES:
        raise ValueError(f"unknown clip family {family!r}; expected one of {list(FAMILIES)}")
    return family


def draw_span(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int]:
    """A gesture span ``[start, end)`` inside the segment ``[lo, hi)``, as the standard planner draws them."""
    length = hi - lo
    shortest = min(3, length - 2)
    duration = int(rng.integers(shortest, max(shortest, min(10, length - 3)) + 1))
    start = lo + int(rng.integers(1, length - duration))
    return start, start + duration


def plan_family_clip(
    split: str, index: int, seed: int, family: str, spec: ClipSpec, garment_class: str | None = None
) -> ClipPlan:
    """The plan of clip ``index`` of ``family`` (side ``index % 2`` of pair ``index // 2``)."""
    check_split(split)
    if check_family(family) is None:
        raise ValueError(f"plan_family_clip needs a benchmark family ({list(BENCHMARK_FAMILIES)}), got {family!r}")
    num_frames = spec.num_frames
    if num_frames < MIN_FRAMES[family]:
        raise ValueError(f"family {family!r} needs clips of at least {MIN_FRAMES[family]} frames, got {num_frames}")
    pair, side = divmod(int(index), 2)
    streams = clip_streams(split, pair, seed, family)
    scene = sample_scene(streams, split, num_frames, spec.fps, garment_class)
    rng = streams["plan"]
    hand = int(rng.integers(2))
    passive, hover, counter = False, False, None
    if family == "contact":
        kinds = [
            k
            for k in ACTION_KINDS.values()
            if scene.garment.garment_class in k.classes
            and combination_allowed(split, k.name, scene.garment.garment_class)
        ]
        kind = kinds[int(rng.integers(len(kinds)))]
        events = [kind.sample(rng, scene.garment, scene.body, hand, *draw_span(rng, 0, num_frames))]
        passive = hover = side == 1
    elif family == "caption":
        first = LIFT.sample(rng, scene.garment, scene.body, hand, *draw_span(rng, 0, num_frames))
        shown, other = (LIFT, STRETCH) if side == 0 else (STRETCH, LIFT)
        events = [dataclasses.replace(first, kind=shown.name)]
        counter = (dataclasses.replace(first, kind=other.name),)
    else:
        half = round(num_frames / 2)
        spans = [draw_span(rng, 0, half), draw_span(rng, half, num_frames)]
        pinch = LIFT.sample(rng, scene.garment, scene.body, hand, *spans[0])
        order = (LIFT, STRETCH) if side == 0 else (STRETCH, LIFT)
        events = [dataclasses.replace(pinch, kind=k.name, start=s, end=e) for k, (s, e) in zip(order, spans)]
        counter = tuple(
            dataclasses.replace(pinch, kind=k.name, start=s, end=e) for k, (s, e) in zip(order[::-1], spans)
        )
    tracks = build_tracks(events, passive, scene.body, num_frames, scene.idle, scene.passive_depth, hover_grip=hover)
    return ClipPlan(
        split, int(index), seed, num_frames, spec.height, spec.width, float(spec.fps), scene.body, scene.motion, scene.appearance, scene.garment, scene.background,
        tuple(events), passive, tracks, family=family, variant=VARIANTS[family][side], counter_events=counter, hover_grip=hover,
    )  # fmt: skip


def family_mix(families: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """A mix of families as a tuple of names (``standard`` included as such), or None for the standard clips alone."""
    if families is None:
        return None
    names = (families,) if isinstance(families, str) else tuple(families)
    if not names:
        raise ValueError(f"a family mix needs at least one family out of {list(FAMILIES)}")
    for name in names:
        check_family(name)
    return names


def mixed_clip(index: int, families: tuple[str, ...]) -> tuple[str, int]:
    """``(family, index within the family)`` of clip ``index`` of a mix: the families take turns, so every
    family's clips come in whole pairs once the mix is ``2 * len(families)`` clips long."""
    return families[index % len(families)], index // len(families)
