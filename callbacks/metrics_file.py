"""Keeps ``metrics.json`` in the run folder: every ``val/*`` value of the last validation."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from itryon.data.datamodule import SKIPPED_FILE, count_skipped
from itryon.io_utils import write_json


class MetricsFile(L.Callback):
    """Writes the logged ``val/`` metrics after each validation epoch (atomically), for CI and people, with a
    ``reference`` block (the metric callbacks' trivial predictions, e.g. copy-the-input, on the same clips) and
    ``skipped_clips``, the number of clips the data module skipped so far (``skipped.jsonl``).

    Put it after the callbacks that log metrics: callbacks run in list order.
    """

    def __init__(self, filename: str = "metrics.json", prefix: str = "val/") -> None:
        self.filename = filename
        self.prefix = prefix

    @rank_zero_only
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        values = {
            k: (v.item() if torch.is_tensor(v) else float(v))
            for k, v in sorted(trainer.callback_metrics.items())
            if k.startswith(self.prefix) and not k.startswith(f"{self.prefix}reference/")
        }
        record = {"epoch": trainer.current_epoch, "global_step": trainer.global_step, "metrics": values}
        protocols = {}
        for callback in trainer.callbacks:  # metric callbacks record how each value was measured
            protocols.update(getattr(callback, "descriptions", None) or {})
        if protocols:
            record["protocols"] = protocols
        references: dict[str, dict[str, float]] = {}
        for callback in trainer.callbacks:  # trivial predictions scored on the same clips
            for name, scores in (getattr(callback, "reference_values", None) or {}).items():
                references.setdefault(name, {}).update({f"{self.prefix}{k}": v for k, v in scores.items()})
        if references:
            record["reference"] = references
        # clips the data module skipped (listed in skipped.jsonl): metrics that left clips out say how many
        skipped = count_skipped(Path(trainer.default_root_dir) / SKIPPED_FILE)
        record["skipped_clips"] = skipped["clips"]
        record["skipped_by_split"] = skipped["by_split"]
        write_json(Path(trainer.default_root_dir) / self.filename, record)
