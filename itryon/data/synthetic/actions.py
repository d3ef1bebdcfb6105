"""Actions on the garment: their captions, the hand's path, and the deformation field they cause.

An action acts around a contact point over a frame span ``[start, end)``. Its strength over time is an
*envelope* A(t) in [0, 1] (rising over the span, then relaxing or persisting). The deformation is a
displacement field in body coordinates with compact support, plus an optional cut (an opened zipper):
a pixel at body point b shows the garment point ``b - d(b, t)``. Outside the support d is exactly 0, so
the clip and its counterfactual agree there bit for bit.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from .garments import GarmentSpec
from .raster import F32, bump, smoothstep
from .rig import SIDES, BodyShape

OPEN, PINCH, GRASP = 0, 1, 2
GRIPS = ("open", "pinch", "grasp")
HAND_NAMES = ("right", "left")


@dataclass(frozen=True)
class Event:
    """One planned hand-on-garment gesture (an action, or its passive look-alike)."""

    kind: str
    hand: int
    start: int  # first frame
    end: int  # one past the last frame
    contact: tuple[float, float]  # body coordinates
    amount: float  # kind-specific strength (body units)
    width: float = 0.0  # kind-specific (zipper: opening width)


@dataclass
class Deformation:
    """The field of one event on a block of frames: displacement, cut, support, fold shading, zipper pull."""

    dx: np.ndarray
    dy: np.ndarray
    support: np.ndarray  # bool: where the field may change the garment
    fold: np.ndarray
    cut: np.ndarray | None = None  # signed distance to keep out of the garment (> 0 inside the cut)
    pull_y: np.ndarray | None = None


def envelope(event: Event, num_frames: int, persists: bool) -> np.ndarray:
    """A(t) float64 ``(T,)``: 0 before the span, a smoothstep rise over it, then 1 (persisting) or a quick relax."""
    a = np.zeros(num_frames)
    length = event.end - event.start
    for t in range(event.start, num_frames):
        if t < event.end:
            s = (t - event.start + 1) / length
            a[t] = s * s * (3.0 - 2.0 * s)
        elif persists:
            a[t] = 1.0
        else:
            r = 0.35 ** (t - event.end + 1)
            a[t] = r if r >= 0.05 else 0.0
    return a


class ActionKind(ABC):
    name = ""
    phrase = ""  # caption verb phrase; {garment} and {hand} are filled in
    grip = GRASP
    persists = False
    classes: tuple[str, ...] = ("t_shirt", "tank_top", "long_sleeve", "jacket")

    @abstractmethod
    def sample(
        self, rng: np.random.Generator, garment: GarmentSpec, body: BodyShape, hand: int, start: int, end: int
    ) -> Event:
        """Draw the event (contact point, extent) of one occurrence of this action."""

    @abstractmethod
    def hand_path(self, event: Event, a: np.ndarray) -> np.ndarray:
        """Hand centre ``(T, 2)`` while acting, given the envelope ``a`` ``(T,)``."""

    @abstractmethod
    def hand_angle(self, event: Event) -> float:
        """Direction the fingers point while acting (radians, image axes: 0 = +x, pi/2 = down)."""

    @abstractmethod
    def field(self, event: Event, garment: GarmentSpec, bx: np.ndarray, by: np.ndarray, a: np.ndarray) -> Deformation:
        """The deformation on body coordinates ``(t, H, W)`` with envelope values ``a`` ``(t, 1, 1)``."""

    def text(self, garment: GarmentSpec, event: Event) -> str:
        return "The person " + self.phrase.format(garment=garment.name, hand=HAND_NAMES[event.hand]) + "."


class LiftHem(ActionKind):
    name = "lift_hem"
    phrase = "lifts the hem of the {garment} with the {hand} hand"
    grip = GRASP

    def sample(self, rng, garment, body, hand, start, end):
        x = SIDES[hand] * float(rng.uniform(0.02, 0.1))
        return Event(self.name, hand, start, end, (x, garment.hem_y), float(rng.uniform(0.07, 0.13)))

    def hand_path(self, event, a):
        x, y = event.contact
        return np.stack([np.full_like(a, x), y - event.amount * a], axis=-1)

    def hand_angle(self, event):
        return -math.pi / 2 - SIDES[event.hand] * 0.5

    def field(self, event, garment, bx, by, a):
        cx, hem = event.contact
        w = bump((bx - F32(cx)) / F32(0.14)) * smoothstep((by - F32(hem - event.amount - 0.14)) / F32(0.14))
        w = w * (a > 0)
        zero = np.zeros_like(w)
        return Deformation(dx=zero, dy=-F32(event.amount) * a * w, support=w > 0, fold=a * w)


class StretchSideways(ActionKind):
    name = "stretch_sideways"
    phrase = "stretches the {garment} sideways with the {hand} hand"
    grip = PINCH

    def sample(self, rng, garment, body, hand, start, end):
        y = float(rng.uniform(0.5, 0.72))
        edge = SIDES[hand] * (float(garment.half_width(body, y)) - 0.015)
        return Event(self.name, hand, start, end, (edge, y), float(rng.uniform(0.04, 0.075)))

    def hand_path(self, event, a):
        x, y = event.contact
        return np.stack([x + SIDES[event.hand] * event.amount * a, np.full_like(a, y)], axis=-1)

    def hand_angle(self, event):
        return 0.0 if SIDES[event.hand] < 0 else math.pi

    def field(self, event, garment, bx, by, a):
        cx, cy = event.contact
        side = F32(SIDES[event.hand])
        outward = side * (bx - F32(cx))
        w = bump(np.minimum(outward, F32(0.0)) / F32(0.2)) * bump((by - F32(cy)) / F32(0.13)) * (a > 0)
        return Deformation(
            dx=side * F32(event.amount) * a * w, dy=np.zeros_like(w), support=w > 0, fold=F32(0.6) * a * w
        )


class TugCollar(ActionKind):
    name = "tug_collar"
    phrase = "tugs the collar of the {garment} down with the {hand} hand"
    grip = PINCH

    def sample(self, rng, garment, body, hand, start, end):
        x = SIDES[hand] * float(rng.uniform(0.015, 0.045))
        return Event(self.name, hand, start, end, (x, garment.neckline_y(x) + 0.012), float(rng.uniform(0.04, 0.07)))

    def hand_path(self, event, a):
        x, y = event.contact
        return np.stack([np.full_like(a, x), y + event.amount * a + 0.02], axis=-1)

    def hand_angle(self, event):
        return -math.pi / 2

    def field(self, event, garment, bx, by, a):
        cx, cy = event.contact
        w = bump((bx - F32(cx)) / F32(0.1)) * bump(np.maximum(by - F32(cy), F32(0.0)) / F32(0.16)) * (a > 0)
        w = w * (by > F32(cy - 0.12))
        return Deformation(dx=np.zeros_like(w), dy=F32(event.amount) * a * w, support=w > 0, fold=a * w)


class PullZipperDown(ActionKind):
    name = "pull_zipper_down"
    phrase = "pulls the zipper of the {garment} down with the {hand} hand"
    grip = PINCH
    persists = True
    classes = ("jacket",)

    def sample(self, rng, garment, body, hand, start, end):
        return Event(
            self.name,
            hand,
            start,
            end,
            (0.0, garment.zip_top),
            float(rng.uniform(0.2, 0.36)),
            float(rng.uniform(0.03, 0.05)),
        )

    def hand_path(self, event, a):
        x, y = event.contact
        return np.stack([np.full_like(a, x + SIDES[event.hand] * 0.03), y + 0.02 + event.amount * a], axis=-1)

    def hand_angle(self, event):
        return 0.0 if SIDES[event.hand] < 0 else math.pi

    def field(self, event, garment, bx, by, a):
        top = F32(event.contact[1])
        pull_y = top + F32(0.02) + F32(event.amount) * a  # (t, 1, 1)
        gap = (
            F32(event.width) * np.clip((pull_y - by) / F32(0.12), F32(0.0), F32(1.0)) * (by > top - F32(0.02))
        )  # V opening
        lateral = np.maximum(F32(1.0) - np.abs(bx) / F32(0.16), F32(0.0))
        dx = np.sign(bx) * gap * lateral
        cut = gap - np.abs(bx) - (gap <= 0) * F32(1.0)  # > 0 inside the opening; far below 0 where it has no width
        support = (np.abs(bx) < F32(0.16)) & (by > top - F32(0.04)) & (by < pull_y + F32(0.03)) & (a > 0)
        return Deformation(dx=dx, dy=np.zeros_like(dx), support=support, fold=np.zeros_like(dx), cut=cut, pull_y=pull_y)


class PinchHem(ActionKind):
    """A pinch that holds the hem still while the fabric around the fingers responds: ``direction`` -1 lifts it,
    +1 stretches it down. Both responses share the contact point, hand path, angle and grip, so only the
    caption tells them apart (the ``caption`` and ``timing`` benchmark families)."""

    grip = PINCH

    def __init__(self, name: str, phrase: str, direction: float) -> None:
        self.name, self.phrase, self.direction = name, phrase, direction

    def sample(self, rng, garment, body, hand, start, end):
        x = SIDES[hand] * float(rng.uniform(0.03, 0.1))
        return Event(self.name, hand, start, end, (x, garment.hem_y - 0.015), float(rng.uniform(0.08, 0.12)))

    def hand_path(self, event, a):
        x, y = event.contact
        return np.stack([np.full_like(a, x), np.full_like(a, y)], axis=-1)

    def hand_angle(self, event):
        return -math.pi / 2 - SIDES[event.hand] * 0.5

    def field(self, event, garment, bx, by, a):
        cx, hem = event.contact
        w = bump((bx - F32(cx)) / F32(0.15)) * smoothstep((by - F32(hem - event.amount - 0.14)) / F32(0.14))
        w = w * (a > 0)
        return Deformation(
            dx=np.zeros_like(w), dy=F32(self.direction * event.amount) * a * w, support=w > 0, fold=a * w
        )


ACTION_KINDS: dict[str, ActionKind] = {k.name: k for k in (LiftHem(), PullZipperDown(), StretchSideways(), TugCollar())}
# kinds only the benchmark families use; the standard clips draw from ACTION_KINDS alone
FAMILY_KINDS: dict[str, ActionKind] = {
    k.name: k
    for k in (
        PinchHem("pinch_lift_hem", "pinches the hem of the {garment} with the {hand} hand and lifts it", -1.0),
        PinchHem(
            "pinch_stretch_hem", "pinches the hem of the {garment} with the {hand} hand and stretches it down", 1.0
        ),
    )
}


def action_kind(name: str) -> ActionKind:
    """The kind called ``name``, standard or family-only."""
    kind = ACTION_KINDS.get(name) or FAMILY_KINDS.get(name)
    if kind is None:
        raise KeyError(f"unknown action kind {name!r}; expected one of {list(ACTION_KINDS) + list(FAMILY_KINDS)}")
    return kind


def passive_text(garment: GarmentSpec, event: Event) -> str:
    """How a passive look-alike of ``event`` reads: the hand hovers in front of the garment without touching it."""
    return f"the {HAND_NAMES[event.hand]} hand rests open in front of the {garment.name} without touching it"


def hover_text(garment: GarmentSpec, event: Event) -> str:
    """How a hover of ``event`` with the action's grip reads (the ``contact`` family): only the depth differs from the action."""
    return f"the {HAND_NAMES[event.hand]} hand hovers just in front of the {garment.name} without touching it"
