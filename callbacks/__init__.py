"""Lightning callbacks of itryon: validation metrics, samples, metrics file, weight export."""

from callbacks.export import SafetensorsExport
from callbacks.metrics import ValidationMetrics
from callbacks.metrics_file import MetricsFile
from callbacks.samples import SampleVideos

__all__ = ["MetricsFile", "SafetensorsExport", "SampleVideos", "ValidationMetrics"]
