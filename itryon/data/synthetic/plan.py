"""Sampling everything a clip is made of (its *plan*) from the clip's random streams, before any pixel is drawn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .actions import ACTION_KINDS, Event
from .background import BackgroundSpec, sample_background
from .garments import GarmentSpec, sample_garment
from .hands import HandTracks, build_tracks
from .palette import HAIR_COLOURS, SKIN_TONES, TROUSERS, UNDERSHIRTS, jitter
from .rig import BodyMotion, BodyShape, sample_body_shape, sample_motion
from .seeding import clip_streams
from .spec import ClipSpec
from .splits import HELD_OUT_COMBINATION, check_split, combination_allowed

EVENT_COUNT_P = (0.2, 0.5, 0.3)  # 0, 1 or 2 gestures per clip


@dataclass(frozen=True)
class Appearance:
    skin: tuple[str, tuple[float, float, float]]
    hair: tuple[str, tuple[float, float, float]]
    trousers: tuple[str, tuple[float, float, float]]
    undershirt: tuple[str, tuple[float, float, float]]


@dataclass(frozen=True)
class ClipPlan:
    split: str
    index: int
    seed: int
    num_frames: int
    height: int
    width: int
    fps: float
    body: BodyShape
    motion: BodyMotion
    appearance: Appearance
    garment: GarmentSpec
    background: BackgroundSpec
    events: tuple[Event, ...]
    passive: bool
    tracks: HandTracks
    family: str | None = None  # a benchmark family (families.py); None for the standard clips
    variant: str | None = None  # which side of the family's pair the clip shows
    counter_events: tuple[Event, ...] | None = None  # what the counterfactual shows instead; None: the standard rule
    hover_grip: bool = False  # a passive hand keeps the action's grip (only its depth differs)

    @property
    def clip_id(self) -> str:
        family = f"-{self.family}" if self.family else ""
        return f"{self.split}{family}-s{self.seed}-{self.index:06d}"

    @property
    def shown_events(self) -> tuple[Event, ...]:
        """The events whose response the video shows (none for a passive clip)."""
        return () if self.passive else self.events

    @property
    def counterfactual_events(self) -> tuple[Event, ...]:
        """The events whose response the counterfactual shows: standard clips swap response and no response."""
        if self.counter_events is not None:
            return self.counter_events
        return self.events if self.passive else ()


@dataclass(frozen=True)
class Scene:
    """Everything of a clip but its gestures: who, what they wear, where, and how the body and idle hands move."""

    body: BodyShape
    motion: BodyMotion
    appearance: Appearance
    idle: np.ndarray  # (2, 3) per hand: amplitude, frequency, phase of the rest motion
    passive_depth: float
    garment: GarmentSpec
    background: BackgroundSpec


def _pick(rng: np.random.Generator, table):
    name, rgb = table[int(rng.integers(len(table)))]
    return name, jitter(rng, rgb, 0.03)


def plan_events(
    rng: np.random.Generator, split: str, garment: GarmentSpec, body: BodyShape, num_frames: int, at_least_one: bool
) -> list[Event]:
    """0-2 gestures in disjoint time segments, with kinds allowed for the garment class and split."""
    count = int(rng.choice(3, p=EVENT_COUNT_P))
    second = rng.random()  # drawn always, so that forcing one event does not shift later draws
    if at_least_one and count == 0:
        count = 1 if second < 0.7 else 2
    if num_frames < 5:
        return []
    if num_frames < 10:
        count = min(count, 1)
    events: list[Event] = []
    kinds = [
        k
        for k in ACTION_KINDS.values()
        if garment.garment_class in k.classes and combination_allowed(split, k.name, garment.garment_class)
    ]
    for i in range(count):
        lo, hi = round(i * num_frames / count), round((i + 1) * num_frames / count)
        length = hi - lo
        shortest = min(3, length - 2)
        duration = int(rng.integers(shortest, max(shortest, min(10, length - 3)) + 1))
        start = lo + int(rng.integers(1, length - duration))
        available = [k for k in kinds if not (k.persists and any(e.kind == k.name for e in events))]
        weights = np.array(
            [
                3.0 if split == "test" and (k.name, garment.garment_class) == HELD_OUT_COMBINATION else 1.0
                for k in available
            ]
        )
        kind = available[int(rng.choice(len(available), p=weights / weights.sum()))]
        hand = int(rng.integers(2))
        events.append(kind.sample(rng, garment, body, hand, start, start + duration))
    return events


def plan_clip(
    split: str, index: int, seed: int, spec: ClipSpec, passive: bool | None = None, garment_class: str | None = None
) -> ClipPlan:
    """The plan of clip ``(split, index, seed)``; ``passive``/``garment_class`` override the drawn values.

    Forcing ``passive`` keeps every other draw, so the passive and interactive versions of a clip share
    their body motion, garment and 2D hand paths.
    """
    check_split(split)
    num_frames = spec.num_frames
    streams = clip_streams(split, index, seed)
    scene = sample_scene(streams, split, num_frames, spec.fps, garment_class)
    body, garment = scene.body, scene.garment
    is_passive = bool(streams["passive"].random() < spec.passive_fraction) if passive is None else bool(passive)
    events = plan_events(streams["plan"], split, garment, body, num_frames, at_least_one=is_passive)
    tracks = build_tracks(events, is_passive, body, num_frames, scene.idle, scene.passive_depth)
    return ClipPlan(
        split, index, seed, num_frames, spec.height, spec.width, float(spec.fps), body, scene.motion, scene.appearance, garment,
        scene.background, tuple(events), is_passive, tracks,
    )  # fmt: skip


def sample_scene(
    streams: dict[str, np.random.Generator], split: str, num_frames: int, fps: float, garment_class: str | None
) -> Scene:
    """Body, motion, looks and idle hands from the ``appearance`` stream, the garment and the background from theirs."""
    look = streams["appearance"]
    body = sample_body_shape(look)
    motion = sample_motion(look, num_frames, fps)
    appearance = Appearance(
        _pick(look, SKIN_TONES), _pick(look, HAIR_COLOURS), _pick(look, TROUSERS), _pick(look, UNDERSHIRTS)
    )
    idle = np.stack(
        [look.uniform(0.0, 0.012, 2), look.uniform(0.3, 0.9, 2), look.uniform(0.0, 6.283, 2)], axis=1
    )  # (2, 3)
    passive_depth = float(look.uniform(0.12, 0.18))
    garment = sample_garment(streams["garment"], split, garment_class)
    background = sample_background(streams["background"])
    return Scene(body, motion, appearance, idle, passive_depth, garment, background)
