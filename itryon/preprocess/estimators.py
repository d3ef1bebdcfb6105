"""The estimator interfaces (one small interface per kind) and how a run names and builds them.

A kind is a class with one method; ``frames`` are uint8 ``(T, H, W, 3)`` RGB, one clip at a time:

* :class:`Segmenter`: ``segment(frames) -> Segmentation`` (the person, optionally LIP parts);
* :class:`PoseEstimator`: ``estimate(frames) -> BodyPose``;
* :class:`HandEstimator`: ``estimate(frames, pose) -> HandPose`` (the body pose helps tell the hands apart);
* captioners live in :mod:`.captions`.

:class:`EstimatorSpec` names them by registry name (``mediapipe``, ``onnx``, ``file``, ``none``...) or as
``package.module:Class``, with keyword arguments, so that worker processes can build their own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .types import BodyPose, HandPose, Segmentation


class EstimatorError(RuntimeError):
    """An estimator cannot be built (a missing package or model file) or cannot run."""


@runtime_checkable
class Segmenter(Protocol):
    def segment(self, frames: np.ndarray) -> Segmentation: ...


@runtime_checkable
class PoseEstimator(Protocol):
    def estimate(self, frames: np.ndarray) -> BodyPose: ...


@runtime_checkable
class HandEstimator(Protocol):
    def estimate(self, frames: np.ndarray, pose: BodyPose) -> HandPose: ...


class NoHands:
    """A hand estimator that finds no hand: the hand prior is all zeros (128)."""

    def estimate(self, frames: np.ndarray, pose: BodyPose) -> HandPose:
        return HandPose.empty(len(frames))


# kind -> registry name -> "module:Class" (imported only when chosen)
REGISTRY: dict[str, dict[str, str]] = {
    "segmenter": {
        "mediapipe": "itryon.preprocess.mediapipe_estimators:MediaPipeSegmenter",
        "onnx": "itryon.preprocess.onnx_estimators:OnnxParser",
        "colour-key": "itryon.preprocess.classical:ColourKeySegmenter",
        "densepose": "itryon.preprocess.densepose_files:FileDensePose",
    },
    "pose": {
        "mediapipe": "itryon.preprocess.mediapipe_estimators:MediaPipePose",
        "onnx": "itryon.preprocess.onnx_estimators:OnnxPose",
        "file": "itryon.preprocess.keypoint_files:FilePose",
    },
    "hands": {
        "mediapipe": "itryon.preprocess.mediapipe_estimators:MediaPipeHands",
        "file": "itryon.preprocess.keypoint_files:FileHands",
        "none": "itryon.preprocess.estimators:NoHands",
    },
}
INTERFACES = {"segmenter": Segmenter, "pose": PoseEstimator, "hands": HandEstimator}


def resolve(kind: str, name: str) -> type:
    """The class a registry name or ``module:Class`` names for ``kind``."""
    target = REGISTRY[kind].get(name, name)
    if ":" not in target:
        raise EstimatorError(
            f"unknown {kind} estimator {name!r}; choose one of {sorted(REGISTRY[kind])} or give module:Class"
        )
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise EstimatorError(f"{kind} estimator {name!r}: cannot import {target} ({exc})") from exc
    return cls


@dataclass
class EstimatorSpec:
    """Which estimator of each kind to use and its keyword arguments (picklable: worker processes build from it)."""

    segmenter: str = "mediapipe"
    pose: str = "mediapipe"
    hands: str = "mediapipe"
    args: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> kwargs

    def build(self) -> dict[str, Any]:
        """``{"segmenter", "pose", "hands"}`` instances; an estimator that does not have its kind's method is an error."""
        built = {}
        for kind in ("segmenter", "pose", "hands"):
            name = getattr(self, kind)
            instance = resolve(kind, name)(**self.args.get(kind, {}))
            if not isinstance(instance, INTERFACES[kind]):
                method = (
                    "segment(frames)"
                    if kind == "segmenter"
                    else "estimate(frames)"
                    if kind == "pose"
                    else "estimate(frames, pose)"
                )
                raise EstimatorError(f"{kind} estimator {name!r} ({type(instance).__name__}) has no method {method}")
            built[kind] = instance
        return built
