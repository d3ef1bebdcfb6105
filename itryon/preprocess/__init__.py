"""Preprocessing raw person videos into the interactive manifest (``itryon preprocess``, docs/preprocessing.md).

Per clip: person segmentation, body and hand keypoints (pluggable estimators, :mod:`.estimators`), the pose render
and the 3D hand prior drawn by the synthetic world's own renderers, the garment-category-aware agnostic video and
mask, the in-shop garment's mask, and captions with time spans from a file or a local video-language model.
"""

from .estimators import EstimatorError, EstimatorSpec, HandEstimator, PoseEstimator, Segmenter
from .types import BodyPose, HandPose, Segmentation

__all__ = [
    "BodyPose",
    "EstimatorError",
    "EstimatorSpec",
    "HandEstimator",
    "HandPose",
    "PoseEstimator",
    "Segmentation",
    "Segmenter",
]
