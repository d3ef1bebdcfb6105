"""Exact resume: the global RNG states in every checkpoint, validation on its own RNG, logs that continue.

With the training DataLoader's own state (torchdata's ``StatefulDataLoader``, see ``TryOnDataModule``), a run
killed at any step and resumed draws the same batches, noise and timesteps as a run that was never stopped,
so its per-step losses are the same bit for bit on CPU.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from itryon.data.datamodule import rng_states, set_rng_states
from itryon.io_utils import write_text


class TrainingRNGState(L.Callback):
    """Stores the python, numpy and torch (CPU and CUDA) RNG states in each checkpoint and restores them when a
    resumed fit starts training; validation runs on a copy of the RNG states, so that it never shifts the
    random draws of training (a run validated at step N and one resumed from step N's checkpoint continue
    alike). Lightning keeps loop and data-loader states but not these."""

    def __init__(self) -> None:
        self._to_restore: dict[str, Any] | None = None
        self._before_validation: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        # called while a checkpoint is written: after the step it belongs to, outside validation
        return {"rng": self._before_validation if self._before_validation is not None else rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._to_restore = state_dict.get("rng")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the training DataLoader's iterator exists, so its creation does not shift the restored states
        if self._to_restore is not None:
            set_rng_states(self._to_restore)
            self._to_restore = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._before_validation = rng_states()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._before_validation is not None:
            set_rng_states(self._before_validation)
            self._before_validation = None


class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that an existing ``metrics.csv`` is continued instead of deleted: rows
    of steps at or after ``resume_step`` (logged after the checkpoint, before the kill; the resumed run logs
    them again) and a last line cut by the kill are dropped."""

    def __init__(self, log_dir: str, resume_step: int | None) -> None:
        self._resume_step = resume_step
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:
        if self._resume_step is None or not os.path.isfile(self.metrics_file_path):
            super()._check_log_dir_exists()
            return
        with open(self.metrics_file_path, newline="", encoding="utf-8") as f:
            text = f.read()
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # a row cut short
        reader = csv.DictReader(io.StringIO(text))
        header = list(reader.fieldnames or [])
        rows = [
            r
            for r in reader
            if None not in r.values() and r.get("step", "").isdigit() and int(r["step"]) < self._resume_step
        ]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.metrics_file_path, out.getvalue())
        self.metrics_keys = header


class ContinuingCSVLogger(CSVLogger):
    """A ``CSVLogger`` that a resumed run (``resume_step`` = the checkpoint's global step) continues in the
    same ``metrics.csv``, instead of starting over or in a ``csv_1`` folder."""

    def __init__(self, save_dir: str, *, resume_step: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("flush_logs_every_n_steps", 1)  # every logged row on disk before a possible kill
        super().__init__(save_dir, **kwargs)
        self._resume_step = resume_step

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir, resume_step=self._resume_step)
        return self._experiment


class ContinuingTensorBoardLogger(TensorBoardLogger):
    """A ``TensorBoardLogger`` that a resumed run (``resume_step`` = the checkpoint's global step) continues: the
    events logged after the checkpoint, before the kill, are hidden (TensorBoard's ``purge_step``)."""

    def __init__(self, save_dir: str, *, resume_step: int | None = None, **kwargs: Any) -> None:
        if resume_step is not None:
            kwargs.setdefault("purge_step", resume_step)
        super().__init__(save_dir, **kwargs)
