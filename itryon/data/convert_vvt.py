"""Convert the VVT dataset (FW-GAN's release) to the interactive manifest.

The release holds frames and their annotations per split, and the in-shop garments per person::

    VVT/train/train_frames/<clip>/<frame>.png                  video frames (clip ids like 4he21d00f-g11)
       /train/train_frames_keypoint/<clip>/<frame>_keypoints.json   OpenPose COCO-18 body keypoints
       /train/train_frames_parsing/<clip>/<frame>_label.png    LIP human parsing (or <frame>.png)
       /test/test_frames/..., test_frames_keypoint/..., test_frames_parsing/...
       /clothes_person/img/<PERSON>/<PERSON>-<CLOTH>@<n>=cloth_front.jpg   in-shop garments (upper case)
       /test_person_clothes_pose_tuple.txt                     '<clip> <garment clip> <pose clip>' test pairs

VVT has upper-body garments only. The keypoints and parsings stand in for :mod:`itryon.preprocess`'s estimators:
the pose render is drawn by the synthetic world's renderer from the keypoints, the agnostic mask and video are
built from keypoints and parsing as for any preprocessed clip, the garment mask from the in-shop image, and the
hand prior from OpenPose hand keypoints when the files hold them (else it is all zeros). Frames are used in place
when their names number them (else copied once, losslessly, to ``OUT/<split>/.frames/``); the written files go to
``OUT/<split>/<clip>/``. The frames carry no frame rate: give it (``--fps``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from itryon.data.manifest import ManifestError
from itryon.data.video_io import VideoIOError, video_info, write_video
from itryon.preprocess.estimators import EstimatorError
from itryon.preprocess.pipeline import ClipJob
from itryon.preprocess.runner import SplitResult, preprocess_split
from itryon.preprocess.types import HAND_POINTS, LEFT, RIGHT, BodyPose, HandPose, J, Segmentation

# OpenPose COCO-18 body keypoints -> pose joints
OPENPOSE = {
    "head": 0,
    "neck": 1,
    "r_shoulder": 2,
    "r_elbow": 3,
    "r_wrist": 4,
    "l_shoulder": 5,
    "l_elbow": 6,
    "l_wrist": 7,
    "r_hip": 8,
    "r_knee": 9,
    "r_ankle": 10,
    "l_hip": 11,
    "l_knee": 12,
    "l_ankle": 13,
}
_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def frame_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files of ``folder`` ending in ``suffixes``, in the order of the last number in their names."""
    files = [f for f in folder.iterdir() if f.name.lower().endswith(suffixes)] if folder.is_dir() else []
    if not files:
        raise ManifestError(f"{folder}: no {'/'.join(suffixes)} files")
    return sorted(files, key=lambda f: (int(_NUMBER.search(f.name).group(1)) if _NUMBER.search(f.name) else -1, f.name))


def _people(path: Path) -> dict[str, Any] | None:
    try:
        people = json.loads(path.read_text()).get("people", [])
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ManifestError(f"{path}: not an OpenPose keypoint file ({exc})") from exc
    return people[0] if people else None


class VVTKeypoints:
    """The clip's OpenPose files as a pose estimator and a hand estimator (:mod:`itryon.preprocess.estimators`)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.clip: str | None = None

    def for_clip(self, clip: str) -> VVTKeypoints:
        self.clip = clip
        return self

    def _files(self, count: int) -> list[Path]:
        files = frame_files(self.folder / str(self.clip), ("_keypoints.json",))
        if len(files) != count:
            raise EstimatorError(f"{self.folder / str(self.clip)}: {len(files)} keypoint files for {count} frames")
        return files

    def estimate(self, frames: np.ndarray, pose: BodyPose | None = None):
        if pose is not None:  # called as the hand estimator
            return self._hands(frames)
        out = BodyPose.empty(len(frames))
        for i, path in enumerate(self._files(len(frames))):
            person = _people(path)
            if person is None:
                continue
            points = np.asarray(person.get("pose_keypoints_2d", person.get("pose_keypoints", [])), dtype=float).reshape(
                -1, 3
            )
            for name, k in OPENPOSE.items():
                if k < len(points):
                    out.points[i, J[name]], out.score[i, J[name]] = points[k, :2], points[k, 2]
            for side, wrist, elbow in (
                ("r", 4, 3),
                ("l", 7, 6),
            ):  # no hand joint in COCO-18: a quarter forearm past the wrist
                if max(wrist, elbow) < len(points):
                    out.points[i, J[f"{side}_hand"]] = points[wrist, :2] + 0.25 * (
                        points[wrist, :2] - points[elbow, :2]
                    )
                    out.score[i, J[f"{side}_hand"]] = min(points[wrist, 2], points[elbow, 2])
        out.score[(out.points == 0).all(-1)] = 0.0  # OpenPose writes (0, 0, 0) for joints it did not find
        return out

    def _hands(self, frames: np.ndarray) -> HandPose:
        out = HandPose.empty(len(frames))
        for i, path in enumerate(self._files(len(frames))):
            person = _people(path) or {}
            for side, key in ((RIGHT, "hand_right_keypoints_2d"), (LEFT, "hand_left_keypoints_2d")):
                points = np.asarray(person.get(key, []), dtype=float).reshape(-1, 3)
                if len(points) == HAND_POINTS and (points[:, 2] > 0.3).sum() >= 15:
                    out.points[i, side, :, :2] = points[:, :2]
                    out.present[i, side] = True
        return out


class VVTParsing:
    """The clip's LIP parsing PNGs as a segmenter (person = any label but background)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.clip: str | None = None

    def for_clip(self, clip: str) -> VVTParsing:
        self.clip = clip
        return self

    def segment(self, frames: np.ndarray) -> Segmentation:
        files = frame_files(self.folder / str(self.clip), (".png",))
        if len(files) != len(frames):
            raise EstimatorError(f"{self.folder / str(self.clip)}: {len(files)} parsing files for {len(frames)} frames")
        parts = []
        for f in files:
            with Image.open(f) as im:
                labels = np.asarray(im if im.mode in ("L", "P") else im.convert("L"))
            if labels.shape != frames.shape[1:3]:
                labels = np.asarray(Image.fromarray(labels).resize(frames.shape[2:0:-1], Image.NEAREST))
            parts.append(labels)
        parts = np.stack(parts).astype(np.uint8)
        return Segmentation((parts > 0).astype(np.float32), parts)


def find_garment(root: Path, garment_clip: str) -> Path:
    """``clothes_person/img/<PERSON>/<PERSON>-<CLOTH>*cloth_front*`` for a clip id ``person-cloth`` (any case)."""
    person = garment_clip.split("-")[0].upper()
    folder = root / "clothes_person" / "img" / person
    if not folder.is_dir():
        raise ManifestError(f"clip {garment_clip!r}: no garment folder {folder}")
    prefix = garment_clip.upper()
    matches = sorted(
        f for f in folder.iterdir() if f.name.upper().startswith(prefix) and "CLOTH_FRONT" in f.name.upper()
    )
    matches = matches or sorted(
        f for f in folder.iterdir() if f.name.upper().startswith(prefix) and "CLOTH" in f.name.upper()
    )
    if not matches:
        raise ManifestError(f"clip {garment_clip!r}: no {prefix}*cloth_front* image in {folder}")
    return matches[0]


def readable_video(folder: Path, out: Path, split: str, fps: float) -> Path:
    """``folder`` when the manifest reader takes its frame names, else a lossless MP4 of its frames in the
    order of their numbers, written once to ``OUT/<split>/.frames/<clip>.mp4``."""
    try:
        video_info(folder)
        return folder
    except VideoIOError:
        target = out / split / ".frames" / f"{folder.name}.mp4"
        if not target.is_file():
            frames = []
            for f in frame_files(folder, (".png", ".jpg", ".jpeg")):
                with Image.open(f) as im:
                    frames.append(np.asarray(im.convert("RGB")))
            write_video(target, np.stack(frames), fps=fps, lossless=True)
        return target


def vvt_jobs(
    root: str | Path, out: str | Path, split: str, fps: float, pairs: str | Path | None = None
) -> list[ClipJob]:
    """One job per clip of ``<split>/<split>_frames``; its garment is its own, or the pairs file's (``clip garment [...]``)."""
    root, out = Path(root), Path(out)
    frames = root / split / f"{split}_frames"
    if not frames.is_dir():
        raise ManifestError(f"{root}: no {split}/{split}_frames folder (the VVT layout)")
    clips = sorted(p.name for p in frames.iterdir() if p.is_dir())
    pairing = {}
    if pairs:
        for number, line in enumerate(Path(pairs).read_text().splitlines(), start=1):
            parts = line.split()
            if parts:
                if len(parts) < 2:
                    raise ManifestError(f"{pairs}:{number}: expected '<clip> <garment clip> [...]', got {line!r}")
                pairing[parts[0]] = parts[1]
        clips = [c for c in clips if c in pairing]
    return [
        ClipJob(
            c,
            readable_video(frames / c, out, split, fps),
            find_garment(root, pairing.get(c, c)),
            "upper",
            out,
            f"{split}/{c}",
            fps=fps,
        )
        for c in clips
    ]


def convert_vvt(
    root: str | Path,
    out: str | Path,
    split: str,
    fps: float,
    pairs: str | Path | None = None,
    workers: int = 1,
    progress: bool = False,
) -> SplitResult:
    """Write ``out/<split>.jsonl`` (and the made files) for VVT's ``split``; returns what was processed and failed."""
    from itryon.preprocess.estimators import EstimatorSpec

    root = Path(root)
    keypoints = str(root / split / f"{split}_frames_keypoint")
    spec = EstimatorSpec(
        segmenter="itryon.data.convert_vvt:VVTParsing",
        pose="itryon.data.convert_vvt:VVTKeypoints",
        hands="itryon.data.convert_vvt:VVTKeypoints",
        args={
            "segmenter": {"folder": str(root / split / f"{split}_frames_parsing")},
            "pose": {"folder": keypoints},
            "hands": {"folder": keypoints},
        },
    )
    jobs = vvt_jobs(root, out, split, fps, pairs)
    if not jobs:
        raise ManifestError(f"{root / split}: no clips to convert")
    return preprocess_split(jobs, Path(out) / f"{split}.jsonl", spec, workers=workers, progress=progress)
