"""The default estimators: MediaPipe 0.10.14's pose, hand-landmark (+ palm detection) and selfie-segmentation
models, which ship inside its wheel, so nothing is downloaded (``pip install -e ".[preprocess]"``).

Later MediaPipe releases ship none of these files and would fetch them at run time; a missing model file is an
error naming it. Pose runs at ``model_complexity=1``, the one pose model the wheel holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .estimators import EstimatorError
from .types import BODY_JOINTS, HAND_POINTS, LEFT, RIGHT, VISIBLE, BodyPose, HandPose, J, Segmentation

MODEL_FILES = {
    "pose": ("modules/pose_detection/pose_detection.tflite", "modules/pose_landmark/pose_landmark_full.tflite"),
    "hands": ("modules/palm_detection/palm_detection_full.tflite", "modules/hand_landmark/hand_landmark_full.tflite"),
    "segmenter": ("modules/selfie_segmentation/selfie_segmentation.tflite",),
}
INSTALL = 'pip install -e ".[preprocess]" (mediapipe==0.10.14 with protobuf<5 and a tensorboard that accepts it)'
# MediaPipe pose landmark indices (the person's left/right)
_NOSE, _L_SH, _R_SH, _L_EL, _R_EL, _L_WR, _R_WR = 0, 11, 12, 13, 14, 15, 16
_L_PINKY, _R_PINKY, _L_INDEX, _R_INDEX, _L_THUMB, _R_THUMB = 17, 18, 19, 20, 21, 22
_L_HIP, _R_HIP, _L_KNEE, _R_KNEE, _L_ANKLE, _R_ANKLE = 23, 24, 25, 26, 27, 28


def mediapipe(kind: str):
    """The ``mediapipe`` module, after checking that its wheel holds the model files of ``kind``."""
    try:
        import mediapipe as mp
    except ImportError as exc:
        raise EstimatorError(
            f"the default {kind} estimator needs mediapipe, which is not installed: {INSTALL}"
        ) from exc
    except TypeError as exc:  # its generated protobuf code under protobuf >= 5
        raise EstimatorError(f"mediapipe cannot load with this protobuf ({exc}): {INSTALL}") from exc
    root = Path(mp.__file__).parent
    for rel in MODEL_FILES[kind]:
        if not (root / rel).is_file():
            raise EstimatorError(
                f"mediapipe {getattr(mp, '__version__', '?')} lacks the model file {root / rel} (only 0.10.14 ships its models; "
                f"later releases download them, which cannot work offline): {INSTALL}"
            )
    return mp


def _rgb(frame: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)


class MediaPipeSegmenter:
    """Selfie segmentation: the person's probability per pixel (``model_selection=0``, the general model)."""

    def __init__(self, model_selection: int = 0) -> None:
        self.mp = mediapipe("segmenter")
        self.model_selection = model_selection

    def segment(self, frames: np.ndarray) -> Segmentation:
        with self.mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=self.model_selection) as seg:
            masks = [seg.process(_rgb(f)).segmentation_mask for f in frames]
        return Segmentation(np.stack(masks).astype(np.float32).clip(0.0, 1.0))


class MediaPipePose:
    """BlazePose landmarks mapped onto the pose joints; depth from the landmarks' z relative to the torso.

    BlazePose tracks from the frame where it first detects the person; with ``both_ways`` the frames before that
    (or after it lost the person) are filled from a second pass over the clip played backwards."""

    def __init__(self, min_detection_confidence: float = 0.5, smooth: bool = True, both_ways: bool = True) -> None:
        self.mp = mediapipe("pose")
        self.min_detection_confidence = min_detection_confidence
        self.smooth = smooth
        self.both_ways = both_ways

    def _pass(self, frames: np.ndarray, order: list[int], out: BodyPose, found: np.ndarray) -> None:
        h, w = frames.shape[1:3]
        opts = dict(
            static_image_mode=False,
            model_complexity=1,
            smooth_landmarks=self.smooth,
            min_detection_confidence=self.min_detection_confidence,
        )
        with self.mp.solutions.pose.Pose(**opts) as pose:
            for i in order:
                landmarks = pose.process(_rgb(frames[i])).pose_landmarks
                if landmarks is None or found[i]:
                    continue
                lm = np.array([(p.x * w, p.y * h, p.z * w, p.visibility) for p in landmarks.landmark])  # (33, 4)
                _fill_joints(out, i, lm)
                found[i] = True
                for side, idx in (
                    (RIGHT, (_R_WR, _R_THUMB, _R_INDEX, _R_PINKY)),
                    (LEFT, (_L_WR, _L_THUMB, _L_INDEX, _L_PINKY)),
                ):
                    if lm[list(idx), 3].min() >= VISIBLE:
                        out.hands.points[i, side] = coarse_hand(*(lm[k, :3] for k in idx))
                        out.hands.present[i, side] = True

    def estimate(self, frames: np.ndarray) -> BodyPose:
        t = len(frames)
        out = BodyPose.empty(t)
        out.hands = HandPose.empty(t)
        found = np.zeros(t, dtype=bool)
        self._pass(frames, list(range(t)), out, found)
        if self.both_ways and found.any() and not found.all():
            self._pass(frames, list(range(t - 1, -1, -1)), out, found)
        return out


def coarse_hand(wrist: np.ndarray, thumb: np.ndarray, index: np.ndarray, pinky: np.ndarray) -> np.ndarray:
    """An open hand's 21 keypoints ``(21, 3)`` from BlazePose's wrist, thumb, index and little-finger knuckles:
    knuckles between the index and little finger, fingers straight on along the palm, as long as it."""
    knuckles = [index + (pinky - index) * f for f in (0.0, 1 / 3, 2 / 3, 1.0)]
    along = (knuckles[0] + knuckles[3]) / 2 - wrist
    points = [wrist]
    points += [wrist + (thumb - wrist) * f for f in (0.4, 0.8, 1.2, 1.6)]  # the thumb
    for k in knuckles:
        points += [k + along * f for f in (0.0, 0.35, 0.65, 0.9)]
    return np.stack(points)


def _fill_joints(out: BodyPose, i: int, lm: np.ndarray) -> None:
    """Frame ``i`` of ``out`` from BlazePose landmarks ``(33, 4)``: pixel x, y, z (pixels, smaller is nearer) and visibility.

    Joints BlazePose lacks are built from others (the neck above the shoulders' midpoint, a hand at the mean of
    wrist, index and little finger) and scored by their least visible part.
    """

    def part(*idx, towards=None, by=0.0):
        xyz = lm[list(idx), :3].mean(axis=0)
        if towards is not None:
            xyz = xyz + by * (lm[towards, :3] - xyz)
        return xyz, lm[list(idx) + ([towards] if towards is not None else []), 3].min()

    rows = {
        "head": part(_NOSE),
        "neck": part(_L_SH, _R_SH, towards=_NOSE, by=0.15),
        "r_shoulder": part(_R_SH),
        "r_elbow": part(_R_EL),
        "r_wrist": part(_R_WR),
        "l_shoulder": part(_L_SH),
        "l_elbow": part(_L_EL),
        "l_wrist": part(_L_WR),
        "r_hip": part(_R_HIP),
        "l_hip": part(_L_HIP),
        "r_hand": part(_R_WR, _R_INDEX, _R_PINKY),
        "l_hand": part(_L_WR, _L_INDEX, _L_PINKY),
        "r_knee": part(_R_KNEE),
        "l_knee": part(_L_KNEE),
        "r_ankle": part(_R_ANKLE),
        "l_ankle": part(_L_ANKLE),
    }
    assert tuple(rows) == BODY_JOINTS
    torso_z = lm[[_L_SH, _R_SH, _L_HIP, _R_HIP], 2].mean()
    for name, (xyz, visibility) in rows.items():
        out.points[i, J[name]] = xyz[:2]
        out.score[i, J[name]] = float(np.clip(visibility, 0.0, 1.0))
        out.depth[i, J[name]] = torso_z - xyz[2]


class MediaPipeHands:
    """Palm detection + hand landmarks; each hand found is given to the person's hand whose pose joint is nearest
    (MediaPipe's own handedness assumes mirrored selfies and is used only without a pose). Where the landmarker
    finds no hand (small, blurred or stylised hands) and ``fallback`` is set, the body pose's coarse hand (wrist
    and knuckles, an open hand) stands in, when the pose found it."""

    def __init__(self, min_detection_confidence: float = 0.5, max_num_hands: int = 2, fallback: bool = True) -> None:
        self.mp = mediapipe("hands")
        self.min_detection_confidence = min_detection_confidence
        self.max_num_hands = max_num_hands
        self.fallback = fallback

    def estimate(self, frames: np.ndarray, pose: BodyPose) -> HandPose:
        t, h, w = frames.shape[:3]
        out = HandPose.empty(t)
        opts = dict(
            static_image_mode=False,
            max_num_hands=self.max_num_hands,
            model_complexity=1,
            min_detection_confidence=self.min_detection_confidence,
        )
        with self.mp.solutions.hands.Hands(**opts) as hands:
            for i, frame in enumerate(frames):
                result = hands.process(_rgb(frame))
                if not result.multi_hand_landmarks:
                    continue
                found = [
                    np.array([(p.x * w, p.y * h, p.z * w) for p in lms.landmark]) for lms in result.multi_hand_landmarks
                ]
                labels = [c.classification[0].label for c in result.multi_handedness]
                for side, points in assign_hands(found, labels, pose, i).items():
                    out.points[i, side] = points
                    out.present[i, side] = True
        if self.fallback and pose.hands is not None:
            missing = ~out.present & pose.hands.present
            out.points[missing] = pose.hands.points[missing]
            out.present |= missing
        return out


def assign_hands(found: list[np.ndarray], labels: list[str], pose: BodyPose, i: int) -> dict[int, np.ndarray]:
    """Hands ``(21, 3)`` -> the person's side: by the nearest pose hand joint when the pose found them, else by
    MediaPipe's label swapped (it labels a non-mirrored image's right hand 'Left')."""
    sides: dict[int, np.ndarray] = {}
    joints = {RIGHT: J["r_hand"], LEFT: J["l_hand"]}
    if all(pose.visible[i, j] for j in joints.values()) and found:
        cost = np.array(
            [
                [np.linalg.norm(p[:HAND_POINTS, :2].mean(0) - pose.points[i, joints[s]]) for s in (RIGHT, LEFT)]
                for p in found
            ]
        )
        for _ in range(min(2, len(found))):
            k, s = np.unravel_index(np.argmin(cost), cost.shape)
            sides[int(s)] = found[int(k)]
            cost[k, :] = np.inf
            cost[:, s] = np.inf
        return sides
    for points, label in zip(found, labels):
        side = RIGHT if label == "Left" else LEFT
        sides.setdefault(side, points)
    return sides
