"""Validation metrics: updates the configured ``itryon.metrics`` on the sampled videos, logs ``val/<name>``.

The metrics are ``MetricCollection``s owned by the module (:mod:`itryon.metrics.owned`): they move with it and
sync across ranks, and stay out of its checkpoints."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics import Metric, MetricCollection

from itryon.metrics.owned import own_metrics
from itryon.metrics.references import REFERENCES
from itryon.metrics.registry import MetricSpec, build_metric, flatten_result, metric_extras, metric_spec


class ValidationMetrics(L.Callback):
    """Every ``every_n_epochs`` validation epochs, feeds ``outputs["pred"]`` (the videos the module sampled,
    ``(B, 3, T, H, W)`` in [-1, 1]) and the batch to each metric, then logs ``val/<name>`` and resets.

    ``metrics`` is a list of registry names, or a mapping ``{log_name: {"metric": registry_name, **options}}``
    (``metric`` defaults to ``log_name``), e.g. ``{"vfid_i3d_rgb": {"metric": "vfid_i3d", "protocol": "rgb"}}``.
    Metrics are built in ``setup`` as a ``MetricCollection`` (one more per reference) that the module owns as
    ``validation_metrics[<prefix>...]``, so a missing weight file fails there. Batches whose ``pred`` is None
    are skipped; an epoch in which no rank sampled logs nothing. Metric states sync across ranks in
    ``compute``, so values are logged with ``sync_dist=False``. ``descriptions`` holds each metric's protocol.

    ``references`` names trivial predictions (:data:`itryon.metrics.references.REFERENCES`: ``copy_input``,
    ``garment_mean_fill``) scored by the same metrics on the same clips, so that every number can be read against
    doing nothing; their values are kept in ``reference_values`` (``{reference: {log key: value}}``, written to
    ``metrics.json`` by :class:`~callbacks.MetricsFile`) and logged once as ``<prefix>reference/<reference>/<key>``.
    The validation clips do not change during a fit, so they are scored at the first metric epoch only.
    """

    def __init__(
        self,
        metrics: Sequence[str] | Mapping[str, Mapping[str, Any] | None],
        every_n_epochs: int = 1,
        weights_dir: str | os.PathLike | None = None,
        prefix: str = "val/",
        references: Sequence[str] = ("copy_input", "garment_mean_fill"),
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if isinstance(metrics, str):
            raise TypeError(f"metrics must be a list of names or a mapping, got the string {metrics!r}")
        self.config: dict[str, dict[str, Any]] = {}
        if isinstance(metrics, Mapping):
            for log_name, opts in metrics.items():
                opts = dict(opts or {})
                self.config[log_name] = {"metric": opts.pop("metric", log_name), **opts}
        else:
            self.config = {name: {"metric": name} for name in metrics}
        for opts in self.config.values():
            metric_spec(opts["metric"])  # unknown names fail at construction, listing the available ones
        unknown = sorted(set(references) - set(REFERENCES))
        if unknown:
            raise ValueError(f"unknown reference(s) {unknown}; choose from {sorted(REFERENCES)}")
        self.references = list(references)
        self.reference_values: dict[str, dict[str, float]] = {}
        self.every_n_epochs = every_n_epochs
        self.weights_dir = weights_dir
        self.prefix = prefix
        self.specs: dict[str, MetricSpec] = {}
        self.metrics: MetricCollection | None = None  # log name -> metric, owned by the module once set up
        self.reference_metrics: dict[str, MetricCollection] = {}
        self.descriptions: dict[str, dict] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.metrics is not None:
            return
        built: dict[str, Metric] = {}
        for log_name, opts in self.config.items():
            options = {k: v for k, v in opts.items() if k != "metric"}
            spec = metric_spec(opts["metric"])
            self.specs[log_name] = spec
            built[log_name] = build_metric(spec.name, weights_dir=self.weights_dir, **options)
            describe = getattr(built[log_name], "describe", None)
            self.descriptions[log_name] = {"metric": spec.name, **(describe() if describe else {})}
        self.metrics = MetricCollection(built, compute_groups=False)
        self.reference_metrics = {
            ref: MetricCollection(
                {n: build_metric(self.specs[n].name, weights_dir=self.weights_dir, **{k: v for k, v in o.items() if k != "metric"})
                 for n, o in self.config.items()},
                compute_groups=False,
            )
            for ref in self.references
        }  # fmt: skip
        name = self.prefix.strip("/").replace("/", "_") or "metrics"
        own_metrics(
            pl_module, {name: self.metrics, **{f"{name}_reference_{r}": m for r, m in self.reference_metrics.items()}}
        )
        if trainer.logger is not None and self.descriptions:
            trainer.logger.log_hyperparams({"metrics": self.descriptions})

    def _active(self, trainer: L.Trainer) -> bool:
        return not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every_n_epochs == 0

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._active(trainer) or not isinstance(outputs, Mapping) or outputs.get("pred") is None:
            return
        if not getattr(pl_module, "scores_its_batches", True):  # a context-parallel rank whose group's first scores
            return
        pred = outputs["pred"].detach()
        for log_name, metric in self.metrics.items():
            try:
                extras = metric_extras(self.specs[log_name], batch)
            except KeyError as exc:
                raise KeyError(f"ValidationMetrics[{log_name!r}]: {exc.args[0]}") from None
            metric.update(pred, batch["video"], **extras)
        if self.reference_values:
            return
        for ref, metrics in self.reference_metrics.items():
            ref_pred = REFERENCES[ref](batch)
            for log_name, metric in metrics.items():
                metric.update(ref_pred, batch["video"], **metric_extras(self.specs[log_name], batch))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._active(trainer) or not self.metrics:
            return
        updated = torch.tensor(int(any(m.update_called for m in self.metrics.values())), device=pl_module.device)
        if int(trainer.strategy.reduce(updated, reduce_op="sum")) == 0:
            return
        for log_name, metric in self.metrics.items():
            for key, value in flatten_result(log_name, metric.compute()).items():
                if math.isfinite(value):
                    pl_module.log(f"{self.prefix}{key}", value, sync_dist=False)
                else:
                    rank_zero_warn(
                        f"ValidationMetrics: {self.prefix}{key} is {value} (nothing to measure this epoch); not logged"
                    )
        self.metrics.reset()
        if self.reference_values or not self.reference_metrics:
            return
        for ref, metrics in self.reference_metrics.items():
            values: dict[str, float] = {}
            for log_name, metric in metrics.items():
                values.update({k: v for k, v in flatten_result(log_name, metric.compute()).items() if math.isfinite(v)})
            metrics.reset()
            self.reference_values[ref] = values
            for key, value in values.items():
                pl_module.log(f"{self.prefix}reference/{ref}/{key}", value, sync_dist=False)
