"""Training throughput through Lightning's ``ThroughputMonitor``, set up for try-on batches from a config entry."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import ThroughputMonitor


def clips_in(batch: Any) -> int:
    """Samples of a batch: its videos (a validation batch whose clips were all skipped has none)."""
    return 0 if batch is None else int(batch["video"].shape[0])


class Throughput(ThroughputMonitor):
    """Lightning's ``ThroughputMonitor`` over the last ``window`` batches (per process): ``train/device/samples_per_sec``,
    ``train/device/batches_per_sec`` and, from the module's ``flops_per_batch`` (the backbone's analytic FLOPs, a
    training batch counting forward and backward), ``train/device/flops_per_sec`` and, on accelerators with a known
    peak, ``train/device/mfu``; with several processes also ``train/samples_per_sec``. Validation batches are
    measured under ``validate/``. Logged every ``trainer.log_every_n_steps``.
    """

    def __init__(self, window: int = 10) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2 batches (a rate needs two timestamps), got {window}")
        super().__init__(batch_size_fn=clips_in, window_size=window)

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # ranks of a context-parallel group share each batch: each counts its share (the module's batch_share)
        self.batch_size_fn = lambda batch: clips_in(batch) * getattr(pl_module, "batch_share", 1.0)
