"""Lightning callbacks of itryon: validation metrics, samples, metrics file, weight export, throughput,
the final validation of a fit and the progress bar."""

from callbacks.export import SafetensorsExport
from callbacks.final_validation import FinalValidation
from callbacks.metrics import ValidationMetrics
from callbacks.metrics_file import MetricsFile
from callbacks.progress import StepProgressBar
from callbacks.samples import SampleVideos
from callbacks.throughput import Throughput

__all__ = [
    "FinalValidation",
    "MetricsFile",
    "SafetensorsExport",
    "SampleVideos",
    "StepProgressBar",
    "Throughput",
    "ValidationMetrics",
]
