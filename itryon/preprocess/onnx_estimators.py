"""Stronger estimators from local ONNX files, run by onnxruntime (``pip install onnxruntime``): RTMPose/DWPose
body keypoints (SimCC heads) and SCHP-style LIP human parsing. A missing file is an error naming it.

Both treat each frame as the person's box (single-person clips), letterboxed to the model's input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .estimators import EstimatorError
from .types import LIP, BodyPose, J, Segmentation

COCO = {
    "head": 0,
    "l_shoulder": 5,
    "r_shoulder": 6,
    "l_elbow": 7,
    "r_elbow": 8,
    "l_wrist": 9,
    "r_wrist": 10,
    "l_hip": 11,
    "r_hip": 12,
    "l_knee": 13,
    "r_knee": 14,
    "l_ankle": 15,
    "r_ankle": 16,
}  # COCO-17 (and the body of COCO-WholeBody-133)
WHOLEBODY_HANDS = {"l_hand": range(91, 112), "r_hand": range(112, 133)}


def session(path: str | Path, what: str):
    """An onnxruntime CPU session of ``path``; errors name the file or the missing package."""
    path = Path(path)
    if not path.is_file():
        raise EstimatorError(f"{what} model file {path} does not exist")
    try:
        import onnxruntime
    except ImportError as exc:
        raise EstimatorError(f"{what} needs onnxruntime to run {path}: pip install onnxruntime") from exc
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def letterbox(frame: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, np.ndarray]:
    """``frame`` scaled to fit ``size`` (H, W) and centred on black; returns it, the scale and the offset (x, y)."""
    h, w = frame.shape[:2]
    scale = min(size[0] / h, size[1] / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(frame).resize((nw, nh), Image.BILINEAR))
    canvas = np.zeros((*size, 3), dtype=np.uint8)
    off = np.array([(size[1] - nw) // 2, (size[0] - nh) // 2])
    canvas[off[1] : off[1] + nh, off[0] : off[0] + nw] = resized
    return canvas, scale, off


def _blob(image: np.ndarray, mean: Sequence[float], std: Sequence[float], bgr: bool) -> np.ndarray:
    x = image[..., ::-1] if bgr else image
    x = (x.astype(np.float32) - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class OnnxPose:
    """RTMPose / DWPose with SimCC outputs ``(1, K, W * r)`` and ``(1, K, H * r)``, K = 17 (COCO) or 133 (WholeBody)."""

    def __init__(
        self,
        model: str,
        input_size: Sequence[int] = (256, 192),
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        bgr: bool = False,
    ) -> None:
        self.session = session(model, "pose (RTMPose/DWPose)")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean, self.std, self.bgr = mean, std, bgr

    def estimate(self, frames: np.ndarray) -> BodyPose:
        out = BodyPose.empty(len(frames))
        name = self.session.get_inputs()[0].name
        for i, frame in enumerate(frames):
            image, scale, off = letterbox(frame, self.input_size)
            simcc_x, simcc_y = self.session.run(None, {name: _blob(image, self.mean, self.std, self.bgr)})[:2]
            ratio = simcc_x.shape[-1] / self.input_size[1]
            xs, ys = simcc_x[0].argmax(-1) / ratio, simcc_y[0].argmax(-1) / ratio  # (K,) model pixels
            score = np.clip(np.minimum(simcc_x[0].max(-1), simcc_y[0].max(-1)), 0.0, 1.0)
            points = (np.stack([xs, ys], axis=-1) - off) / scale  # (K, 2) frame pixels
            _coco_joints(out, i, points, score)
        return out


def _coco_joints(out: BodyPose, i: int, points: np.ndarray, score: np.ndarray) -> None:
    for name, k in COCO.items():
        out.points[i, J[name]], out.score[i, J[name]] = points[k], score[k]
    out.points[i, J["neck"]] = points[[5, 6]].mean(0) + 0.15 * (points[0] - points[[5, 6]].mean(0))
    out.score[i, J["neck"]] = score[[5, 6]].min()
    for side, (wrist, elbow) in (("r", (10, 8)), ("l", (9, 7))):
        hand = f"{side}_hand"
        if len(points) >= 133:
            idx = list(WHOLEBODY_HANDS[hand])
            out.points[i, J[hand]], out.score[i, J[hand]] = points[idx].mean(0), score[idx].mean()
        else:  # a hand's centre lies about a quarter forearm past the wrist
            out.points[i, J[hand]] = points[wrist] + 0.25 * (points[wrist] - points[elbow])
            out.score[i, J[hand]] = min(score[wrist], score[elbow])


class OnnxParser:
    """SCHP-style human parsing: logits ``(1, 20, h, w)`` over the LIP labels for a ``(1, 3, H, W)`` input."""

    def __init__(
        self,
        model: str,
        input_size: Sequence[int] = (473, 473),
        mean=(0.406, 0.456, 0.485),
        std=(0.225, 0.224, 0.229),
        bgr: bool = True,
    ) -> None:
        self.session = session(model, "human parser (SCHP)")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean, self.std, self.bgr = [m * 255 for m in mean], [s * 255 for s in std], bgr

    def segment(self, frames: np.ndarray) -> Segmentation:
        t, h, w = frames.shape[:3]
        parts = np.zeros((t, h, w), dtype=np.uint8)
        name = self.session.get_inputs()[0].name
        for i, frame in enumerate(frames):
            image, scale, off = letterbox(frame, self.input_size)
            logits = self.session.run(None, {name: _blob(image, self.mean, self.std, self.bgr)})[0][0]  # (20, h', w')
            if logits.shape[0] != len(LIP):
                raise EstimatorError(
                    f"the human parser gives {logits.shape[0]} classes, expected the {len(LIP)} LIP labels"
                )
            labels = logits.argmax(0).astype(np.uint8)
            labels = np.asarray(Image.fromarray(labels).resize(self.input_size[::-1], Image.NEAREST))
            nh, nw = round(h * scale), round(w * scale)
            crop = labels[off[1] : off[1] + nh, off[0] : off[0] + nw]
            parts[i] = np.asarray(Image.fromarray(crop).resize((w, h), Image.NEAREST))
        return Segmentation((parts > 0).astype(np.float32), parts)
