"""Video try-on metrics as ``torchmetrics.Metric``: VFID (I3D, 3D-ResNeXt), FVD, SSIM, PSNR, LPIPS and ISR."""

from itryon.metrics.fvd import FrechetVideoDistance
from itryon.metrics.isr import CounterfactualJudge, InteractionJudge, InteractionSuccessRate, JudgedClip
from itryon.metrics.paired import VideoLPIPS, VideoPSNR, VideoSSIM
from itryon.metrics.registry import (
    MetricSpec,
    available_metrics,
    build_metric,
    flatten_result,
    metric_extras,
    metric_spec,
)
from itryon.metrics.vfid import VideoFrechetDistance
from itryon.metrics.weights import WEIGHTS_ENV, MissingWeightsError, find_weights

__all__ = [
    "WEIGHTS_ENV",
    "CounterfactualJudge",
    "FrechetVideoDistance",
    "InteractionJudge",
    "InteractionSuccessRate",
    "JudgedClip",
    "MetricSpec",
    "MissingWeightsError",
    "VideoFrechetDistance",
    "VideoLPIPS",
    "VideoPSNR",
    "VideoSSIM",
    "available_metrics",
    "build_metric",
    "find_weights",
    "flatten_result",
    "metric_extras",
    "metric_spec",
]
