"""Lightning callbacks of itryon: samples, metrics file, weight export (and validation metrics)."""

from callbacks.export import SafetensorsExport
from callbacks.metrics_file import MetricsFile
from callbacks.samples import SampleVideos

__all__ = ["MetricsFile", "SafetensorsExport", "SampleVideos"]
