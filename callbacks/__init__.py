"""Lightning callbacks of itryon: validation metrics, samples, metrics file, weight export, throughput."""

from callbacks.export import SafetensorsExport
from callbacks.metrics import ValidationMetrics
from callbacks.metrics_file import MetricsFile
from callbacks.samples import SampleVideos
from callbacks.throughput import Throughput

__all__ = ["MetricsFile", "SafetensorsExport", "SampleVideos", "Throughput", "ValidationMetrics"]
