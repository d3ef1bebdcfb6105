"""Test helpers that stop a training process the hard way (SIGKILL), at a chosen moment."""

from __future__ import annotations

import os
import signal

import lightning as L


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(L.Callback):
    """SIGKILLs the process in the middle of optimizer step ``step + 1`` (after its backward pass)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        if trainer.global_step == self.step:
            die()
