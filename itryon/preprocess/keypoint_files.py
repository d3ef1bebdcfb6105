"""Keypoints computed elsewhere (DWPose, RTMPose, HaMeR, OpenPose runs) read from one JSON file per clip.

``DIR/<clip>.json`` holds ``{"frames": [...]}``, one entry per frame. A body entry maps joint names
(:data:`~itryon.preprocess.types.BODY_JOINTS`) to ``[x, y, score]`` or ``[x, y, score, depth]`` (pixels; depth in
pixels in front of the torso, positive nearer); a hand entry holds ``"right"`` and ``"left"``, each ``null`` or 21
points ``[x, y, z]`` in MediaPipe/OpenPose order (HaMeR's 2D keypoints with the MANO joints' depth, for example).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .estimators import EstimatorError
from .types import BODY_JOINTS, HAND_POINTS, LEFT, RIGHT, BodyPose, HandPose, J


def _frames(folder: Path, clip: str, count: int, kind: str) -> list:
    path = folder / f"{clip}.json"
    if not path.is_file():
        raise EstimatorError(f"{kind} keypoint file {path} does not exist (one JSON file per clip, named <clip>.json)")
    try:
        frames = json.loads(path.read_text())["frames"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EstimatorError(f'{path}: expected a JSON object {{"frames": [...]}} ({exc})') from exc
    if len(frames) != count:
        raise EstimatorError(f"{path}: holds {len(frames)} frames, the clip has {count}")
    return frames


class _FromFiles:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise EstimatorError(f"keypoint folder {self.folder} does not exist")
        self.clip: str | None = None

    def for_clip(self, clip: str) -> _FromFiles:
        self.clip = clip  # the pipeline names the clip before estimating
        return self


class FilePose(_FromFiles):
    """Body keypoints from ``DIR/<clip>.json`` (see the module docstring)."""

    def estimate(self, frames: np.ndarray) -> BodyPose:
        entries = _frames(self.folder, str(self.clip), len(frames), "pose")
        out = BodyPose.empty(len(frames))
        for i, entry in enumerate(entries):
            for name, value in (entry or {}).items():
                if name not in J:
                    raise EstimatorError(
                        f"{self.folder / f'{self.clip}.json'}: frame {i}: unknown joint {name!r}; joints: {list(BODY_JOINTS)}"
                    )
                out.points[i, J[name]] = value[:2]
                out.score[i, J[name]] = value[2]
                out.depth[i, J[name]] = value[3] if len(value) > 3 else 0.0
        return out


class FileHands(_FromFiles):
    """Hand keypoints from ``DIR/<clip>.json`` (see the module docstring)."""

    def estimate(self, frames: np.ndarray, pose: BodyPose) -> HandPose:
        entries = _frames(self.folder, str(self.clip), len(frames), "hand")
        out = HandPose.empty(len(frames))
        for i, entry in enumerate(entries):
            for side, key in ((RIGHT, "right"), (LEFT, "left")):
                value = (entry or {}).get(key)
                if value is None:
                    continue
                points = np.asarray(value, dtype=float)
                if points.shape != (HAND_POINTS, 3):
                    raise EstimatorError(
                        f"{self.folder / f'{self.clip}.json'}: frame {i}: '{key}' must be {HAND_POINTS} points [x, y, z], got shape {points.shape}"
                    )
                out.points[i, side] = points
                out.present[i, side] = True
        return out
