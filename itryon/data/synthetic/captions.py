"""Captions: the global caption (person, garment, scene) and the time-stamped action captions."""

from __future__ import annotations

from .actions import action_kind, hover_text, passive_text
from .palette import colour_name
from .plan import ClipPlan


def frames_to_seconds(frame: int, fps: float) -> float:
    """Time in seconds of frame boundary ``frame`` (frame ``i`` spans [i / fps, (i + 1) / fps))."""
    return round(frame / fps, 6)


def seconds_to_frames(seconds: float, fps: float) -> int:
    """The frame boundary nearest to ``seconds`` (inverse of :func:`frames_to_seconds`)."""
    return int(round(seconds * fps))


def garment_phrase(plan: ClipPlan) -> str:
    tex = plan.garment.texture
    first, second = colour_name(tex.colour_a), colour_name(tex.colour_b)
    colours = first if first == second else f"{first} and {second}"
    return f"{colours} {tex.describe()} {plan.garment.name}"


def global_caption(plan: ClipPlan) -> str:
    a = plan.appearance
    text = (
        f"A person with {a.skin[0]} skin and {a.hair[0]} hair wears a {garment_phrase(plan)} and {a.trousers[0]}, "
        f"standing in front of {plan.background.describe(colour_name)}."
    )
    if plan.passive:
        for e in plan.events:
            span = f"{frames_to_seconds(e.start, plan.fps):.2f}-{frames_to_seconds(e.end, plan.fps):.2f} s"
            text += f" From {span} {(hover_text if plan.hover_grip else passive_text)(plan.garment, e)}."
    return text


def action_records(plan: ClipPlan, events=None) -> list[dict]:
    """``[{kind, start, end, start_s, end_s, text, hand}]`` for the clip's events, or ``events`` (frames, end exclusive)."""
    hands = ("right", "left")
    return [
        {
            "kind": e.kind,
            "start": int(e.start),
            "end": int(e.end),
            "start_s": frames_to_seconds(e.start, plan.fps),
            "end_s": frames_to_seconds(e.end, plan.fps),
            "text": action_kind(e.kind).text(plan.garment, e),
            "hand": hands[e.hand],
        }
        for e in (plan.events if events is None else events)
    ]
