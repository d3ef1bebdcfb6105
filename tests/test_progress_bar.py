"""The training progress bar names the epoch without Lightning's '/-2' when max_steps bounds the run."""

from __future__ import annotations

from types import SimpleNamespace

from callbacks.progress import StepProgressBar


def description(max_epochs: int | None, epoch: int = 4) -> str:
    bar = StepProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=max_epochs)
    return bar._get_train_description(epoch).strip()


def test_step_bound_runs_show_the_epoch_alone() -> None:
    assert description(-1) == "Epoch 4"
    assert description(None) == "Epoch 4"


def test_epoch_bound_runs_show_the_last_epoch() -> None:
    assert description(10) == "Epoch 4/9"
