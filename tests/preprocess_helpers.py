"""Inputs and stand-in estimators for the preprocessing tests: a pan/zoom video of scikit-image's astronaut photo,
synthetic-world clips as plain videos, and estimators that return fixed answers (importable by worker processes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from itryon.data.video_io import write_video
from itryon.preprocess.types import BODY_JOINTS, HAND_POINTS, BodyPose, HandPose, J, Segmentation

# where things are in the 512x512 photo (x0, y0, x1, y1): her torso and a stretch of background (flag and wall)
ASTRONAUT_TORSO = (150, 290, 280, 440)
ASTRONAUT_BACKGROUND = (0, 0, 120, 150)
ASTRONAUT_HEAD = (150, 30, 300, 210)
# joint positions in the photo (pixels), roughly where a person would put them
ASTRONAUT_JOINTS = {
    "head": (222, 128),
    "neck": (211, 228),
    "r_shoulder": (113, 240),
    "r_elbow": (65, 414),
    "r_wrist": (135, 477),
    "l_shoulder": (306, 257),
    "l_elbow": (322, 375),
    "l_wrist": (326, 461),
    "r_hand": (150, 495),
    "l_hand": (330, 480),
}


def astronaut_crops(frames: int = 17, height: int = 160, width: int = 128) -> list[tuple[int, int, int, int]]:
    """Per frame the photo's crop (x0, y0, w, h): a slow zoom in while panning right."""
    crops = []
    for t in range(frames):
        zoom = 1.0 - 0.2 * t / max(frames - 1, 1)
        ch = int(512 * zoom)
        cw = min(512, int(ch * width / height))
        x0 = int((512 - cw) * (0.2 + 0.6 * t / max(frames - 1, 1)))
        crops.append((x0, (512 - ch) // 2, cw, ch))
    return crops


def to_frame(box, crop, height: int, width: int) -> tuple[int, int, int, int]:
    """A photo box (x0, y0, x1, y1) in a frame's pixels, clipped to it."""
    x0, y0, cw, ch = crop
    sx, sy = width / cw, height / ch
    out = (round((box[0] - x0) * sx), round((box[1] - y0) * sy), round((box[2] - x0) * sx), round((box[3] - y0) * sy))
    return max(out[0], 0), max(out[1], 0), min(out[2], width), min(out[3], height)


def astronaut_video(
    folder: Path, frames: int = 17, height: int = 160, width: int = 128, name: str = "astronaut"
) -> Path:
    from skimage import data

    photo = data.astronaut()
    video = [
        np.asarray(Image.fromarray(photo[y0 : y0 + ch, x0 : x0 + cw]).resize((width, height), Image.BICUBIC))
        for x0, y0, cw, ch in astronaut_crops(frames, height, width)
    ]
    return write_video(folder / f"{name}.mp4", np.stack(video), fps=8.0, lossless=True)


def garment_image(path: Path, size: tuple[int, int] = (96, 80), colour=(230, 90, 30)) -> Path:
    """A flat in-shop garment on white: a rectangle body with two sleeves."""
    h, w = size
    image = np.full((h, w, 3), 255, np.uint8)
    image[h // 6 : h - h // 8, w // 4 : w - w // 4] = colour
    image[h // 6 : h // 2, w // 10 : w // 4] = colour
    image[h // 6 : h // 2, w - w // 4 : w - w // 10] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


class BoxSegmenter:
    """The person is a box given in fractions of the frame (y0, y1, x0, x1)."""

    def __init__(self, box=(0.05, 1.0, 0.1, 0.9)) -> None:
        self.box = box

    def segment(self, frames: np.ndarray) -> Segmentation:
        t, h, w = frames.shape[:3]
        person = np.zeros((t, h, w), np.float32)
        y0, y1, x0, x1 = self.box
        person[:, int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)] = 1.0
        return Segmentation(person)


class FixedPose:
    """The same joints in every frame, given as fractions of the frame (x, y); joints it lacks are not found."""

    def __init__(self, joints: dict | None = None, depth: float = 0.0) -> None:
        self.joints = (
            joints if joints is not None else {k: (x / 512, y / 512) for k, (x, y) in ASTRONAUT_JOINTS.items()}
        )
        self.depth = depth

    def estimate(self, frames: np.ndarray) -> BodyPose:
        t, h, w = frames.shape[:3]
        pose = BodyPose.empty(t)
        for name, (x, y) in self.joints.items():
            pose.points[:, J[name]] = (x * w, y * h)
            pose.score[:, J[name]] = 1.0
            pose.depth[:, J[name]] = self.depth * h
        return pose


def open_hand(centre: tuple[float, float], size: float, angle: float = np.pi / 2) -> np.ndarray:
    """21 keypoints (x, y, z) of an open hand whose palm (wrist to middle knuckle) is ``size`` pixels long."""
    d = np.array([np.cos(angle), np.sin(angle)])
    n = np.array([-d[1], d[0]])
    wrist = np.array(centre) - 0.45 * size * d
    points = [wrist]
    points += [wrist + size * (0.3 * f * d - 0.5 * f * n) for f in (0.5, 1.0, 1.4, 1.8)]
    for off in (-0.35, -0.12, 0.12, 0.35):
        knuckle = wrist + size * d + off * size * n
        points += [knuckle + size * f * d for f in (0.0, 0.35, 0.65, 0.9)]
    return np.concatenate([np.stack(points), np.zeros((HAND_POINTS, 1))], axis=1)


class FixedHands:
    """The person's right hand at ``right`` (fractions of the frame) on the frames ``frames`` (all when None)."""

    def __init__(self, right=(0.3, 0.85), size: float = 0.08, frames=None) -> None:
        self.right, self.size, self.frames = right, size, frames

    def estimate(self, frames: np.ndarray, pose: BodyPose) -> HandPose:
        t, h, w = frames.shape[:3]
        hands = HandPose.empty(t)
        for i in range(t) if self.frames is None else self.frames:
            hands.points[i, 0] = open_hand((self.right[0] * w, self.right[1] * h), self.size * h)
            hands.present[i, 0] = True
        return hands


class FailOnClip:
    """A pose estimator that fails on every clip (to test the failure report)."""

    def estimate(self, frames: np.ndarray) -> BodyPose:
        raise RuntimeError("no person in this clip")


FAKES = {
    "segmenter": "preprocess_helpers:BoxSegmenter",
    "pose": "preprocess_helpers:FixedPose",
    "hands": "preprocess_helpers:FixedHands",
}
assert len(BODY_JOINTS) == 16
