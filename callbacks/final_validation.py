"""Validates after the last training step, so that every fit ends with metrics and samples of its final weights."""

from __future__ import annotations

from typing import Any

import lightning as L


class FinalValidation(L.Callback):
    """Asks the fit to stop on its last step; Lightning then runs a validation epoch there, as it does when a
    callback stops a run early (``Trainer.should_stop``). Validation that already falls on that step runs once.

    The last step is ``max_steps`` or the last batch of epoch ``max_epochs``, whichever comes first.
    """

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.should_stop:
            return
        last_step = trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step
        max_epochs = trainer.max_epochs
        last_epoch = max_epochs is not None and max_epochs > 0 and trainer.current_epoch + 1 >= max_epochs
        last_batch = last_epoch and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if last_step or last_batch:
            trainer.should_stop = True
