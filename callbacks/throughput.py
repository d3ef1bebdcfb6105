"""Training throughput: samples/s, step time and achieved FLOP/s of the backbone, logged under ``train/``."""

from __future__ import annotations

import time

import lightning as L
import torch


class Throughput(L.Callback):
    """Times each training batch (synchronising the accelerator) and logs, every ``window`` batches, the mean
    ``train/step_seconds``, ``train/samples_per_sec`` and ``train/backbone_tflops`` (per process; a training step
    counts 3x the backbone's analytic forward FLOPs, which the module reports as ``last_backbone_flops``).
    """

    def __init__(self, window: int = 10) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._start = 0.0
        self._reset()

    def _reset(self) -> None:
        self._seconds, self._samples, self._flops, self._steps = 0.0, 0, 0, 0

    @staticmethod
    def _sync(pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        self._sync(pl_module)
        self._seconds += time.perf_counter() - self._start
        self._samples += int(batch["video"].shape[0])
        self._flops += 3 * int(getattr(pl_module, "last_backbone_flops", None) or 0)
        self._steps += 1
        if self._steps < self.window:
            return
        values = {
            "train/step_seconds": self._seconds / self._steps,
            "train/samples_per_sec": self._samples / self._seconds,
        }
        if self._flops:
            values["train/backbone_tflops"] = self._flops / self._seconds / 1e12
        pl_module.log_dict(values, on_step=True, on_epoch=False, rank_zero_only=True)
        self._reset()
