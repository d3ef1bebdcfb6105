"""What the estimators return, per clip of ``T`` frames of ``H x W`` pixels (x right, y down, in pixels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from itryon.data.synthetic.skeleton import JOINTS, LEG_JOINTS

BODY_JOINTS = JOINTS + LEG_JOINTS  # the synthetic world's 12 pose joints, then knees and ankles
J = {name: i for i, name in enumerate(BODY_JOINTS)}
HAND_POINTS = 21  # wrist, then 4 points per finger from the thumb to the little finger (MediaPipe / OpenPose order)
WRIST, THUMB_TIP, INDEX_MCP, INDEX_TIP, MIDDLE_MCP = 0, 4, 5, 8, 9
FINGER_TIPS = (8, 12, 16, 20)
KNUCKLES = (5, 9, 13, 17)
RIGHT, LEFT = 0, 1  # the person's hands, as in the synthetic world
VISIBLE = 0.5  # a joint with a lower score counts as not found

# LIP human-parsing labels (SCHP and VVT's parsings use them); Segmentation.parts holds these
LIP = {
    "background": 0,
    "hat": 1,
    "hair": 2,
    "glove": 3,
    "sunglasses": 4,
    "upper_clothes": 5,
    "dress": 6,
    "coat": 7,
    "socks": 8,
    "pants": 9,
    "jumpsuit": 10,
    "scarf": 11,
    "skirt": 12,
    "face": 13,
    "left_arm": 14,
    "right_arm": 15,
    "left_leg": 16,
    "right_leg": 17,
    "left_shoe": 18,
    "right_shoe": 19,
}


@dataclass
class BodyPose:
    """Body joints in :data:`BODY_JOINTS` order: ``points`` ``(T, 16, 2)``, ``score`` ``(T, 16)`` in [0, 1] and
    ``depth`` ``(T, 16)``: pixels in front of the torso plane (positive towards the camera, 0 when unknown)."""

    points: np.ndarray
    score: np.ndarray
    depth: np.ndarray
    hands: HandPose | None = (
        None  # coarse hands some pose models give (wrist and knuckles), a hand estimator's fallback
    )

    @classmethod
    def empty(cls, num_frames: int) -> BodyPose:
        n = len(BODY_JOINTS)
        return cls(np.zeros((num_frames, n, 2)), np.zeros((num_frames, n)), np.zeros((num_frames, n)))

    @property
    def visible(self) -> np.ndarray:
        """``(T, 16)`` bool: the joints found."""
        return self.score >= VISIBLE

    def check(self, num_frames: int, who: str) -> BodyPose:
        n = len(BODY_JOINTS)
        for name, value, shape in (
            ("points", self.points, (num_frames, n, 2)),
            ("score", self.score, (num_frames, n)),
            ("depth", self.depth, (num_frames, n)),
        ):
            if tuple(np.shape(value)) != shape:
                raise ValueError(f"{who} returned BodyPose.{name} of shape {tuple(np.shape(value))}, expected {shape}")
        return self


@dataclass
class HandPose:
    """Hand keypoints per frame and hand (:data:`RIGHT`, :data:`LEFT`): ``points`` ``(T, 2, 21, 3)`` pixel x, y and
    z (pixels, relative to the wrist, negative towards the camera); ``present`` ``(T, 2)`` bool."""

    points: np.ndarray
    present: np.ndarray

    @classmethod
    def empty(cls, num_frames: int) -> HandPose:
        return cls(np.zeros((num_frames, 2, HAND_POINTS, 3)), np.zeros((num_frames, 2), dtype=bool))

    def check(self, num_frames: int, who: str) -> HandPose:
        for name, value, shape in (
            ("points", self.points, (num_frames, 2, HAND_POINTS, 3)),
            ("present", self.present, (num_frames, 2)),
        ):
            if tuple(np.shape(value)) != shape:
                raise ValueError(f"{who} returned HandPose.{name} of shape {tuple(np.shape(value))}, expected {shape}")
        return self


@dataclass
class Segmentation:
    """``person`` ``(T, H, W)`` float in [0, 1] (the person's probability) and optionally ``parts`` ``(T, H, W)``
    uint8 LIP labels (:data:`LIP`) from a human parser."""

    person: np.ndarray
    parts: np.ndarray | None = None

    def check(self, shape: tuple[int, int, int], who: str) -> Segmentation:
        if tuple(np.shape(self.person)) != shape:
            raise ValueError(
                f"{who} returned Segmentation.person of shape {tuple(np.shape(self.person))}, expected {shape}"
            )
        if self.parts is not None and tuple(np.shape(self.parts)) != shape:
            raise ValueError(
                f"{who} returned Segmentation.parts of shape {tuple(np.shape(self.parts))}, expected {shape}"
            )
        return self
