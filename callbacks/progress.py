"""The training progress bar: Lightning's rich bar, with the epoch shown as a count when the run is step-bound."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StepProgressBar(RichProgressBar):
    """``RichProgressBar`` that writes ``Epoch 4`` instead of ``Epoch 4/-2`` when ``max_steps`` bounds the run
    (Lightning then sets ``max_epochs`` to -1), and ``Epoch 4/9`` when ``max_epochs`` does."""

    def _get_train_description(self, current_epoch: int) -> str:
        description = f"Epoch {current_epoch}"
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs > 0:
            description += f"/{max_epochs - 1}"
        if len(self.validation_description) > len(description):
            description = f"{description:{len(self.validation_description)}}"  # same width as the validation bar
        return description
