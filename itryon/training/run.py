"""A training run: its folder, its trainer, and resuming it.

Every start removes the temporary files a killed writer left in the run folder; checkpoints are written
atomically (:class:`~itryon.training.checkpoints.AtomicCheckpointIO`); a resumed run continues from the newest
complete checkpoint with its RNG and data-loader states, in the same logs.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.imports import _RICH_AVAILABLE
from omegaconf import DictConfig, OmegaConf

from callbacks.final_validation import FinalValidation
from callbacks.progress import StepProgressBar
from itryon.config import (
    ArgumentsOf,
    ConfigError,
    Entries,
    import_target,
    instantiate,
    load_config,
    origin_of,
    to_yaml,
    validate,
)
from itryon.config.validate import parameters
from itryon.data.datamodule import SKIPPED_FILE, SkipBadSamples, count_skipped
from itryon.io_utils import remove_orphaned_temps, torch_load, write_text
from itryon.models.backbone import DERIVED_ARGUMENTS
from itryon.training.checkpoints import AtomicCheckpointIO, resume_checkpoint
from itryon.training.resume import TrainingRNGState

log = logging.getLogger(__name__)
CONFIG_NAME = "config.yaml"
WEIGHTS = Path("weights") / "model.safetensors"
LAST_CHECKPOINT = "checkpoints/last.ckpt"
# logger entries a config may name instead of writing them out: the run folder's own logs, continued on --resume
LOGGER_PRESETS = {
    "tensorboard": {
        "_target_": "itryon.training.resume.ContinuingTensorBoardLogger",
        "name": "logs",
        "version": "tensorboard",
    },
    "csv": {"_target_": "itryon.training.resume.ContinuingCSVLogger", "name": "logs", "version": "csv"},
}
DEFAULT_LOGGERS = ("tensorboard", "csv")


def root_schema() -> dict[str, Any]:
    """Allowed top-level keys of a training config and how each is checked (:mod:`itryon.config.validate`)."""
    return {
        "name": str,
        "seed": int,
        "output_dir": str,
        "paths": None,  # free-form local paths that other entries interpolate (${paths.x})
        "float32_matmul_precision": Literal["highest", "high", "medium"] | None,
        "model": None,  # a _target_ node (TryOnModule)
        "data": None,  # a _target_ node (a LightningDataModule)
        "trainer": ArgumentsOf(
            L.Trainer,
            reserved={
                "callbacks": "callbacks are the root 'callbacks' entries",
                "logger": "loggers are the root 'loggers' list",
                "default_root_dir": "the run folder is output_dir/name/<timestamp>",
            },
        ),  # fmt: skip
        "checkpoint": ArgumentsOf(
            ModelCheckpoint, reserved={"dirpath": "checkpoints go to the run folder's checkpoints/"}
        ),
        "callbacks": Entries(),  # name -> _target_ entry (null: left out)
        "loggers": Entries(supplied=("save_dir",), presets=tuple(LOGGER_PRESETS)),  # filled in by build_loggers
    }


def prepare_config(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Load, compose and validate a training config; raises :class:`ConfigError` before anything is built."""
    cfg = load_config(path, overrides)
    validate(cfg, root_schema())
    for key in ("model", "data"):
        if key not in cfg or not isinstance(cfg[key], DictConfig) or "_target_" not in cfg[key]:
            raise ConfigError(f"config {path} needs a '{key}' entry with a _target_")
    _check_derived(cfg)
    return cfg


def _check_derived(cfg: DictConfig) -> None:
    """A ``_partial_`` backbone leaves the channel counts that follow from other parts to the module."""
    backbone = cfg.model.get("backbone")
    if not isinstance(backbone, DictConfig) or not backbone.get("_partial_", False):
        return
    for key in DERIVED_ARGUMENTS:
        if key in backbone:
            raise ConfigError(
                f"'model.backbone.{key}'{_set_in(cfg, f'model.backbone.{key}')} follows from the VAE and the "
                "conditioning and is derived when the model is built; remove it"
            )


def _set_in(cfg: DictConfig, key: str) -> str:
    where = origin_of(cfg, key)
    return f" (set in {where})" if where else ""


def new_run_dir(cfg: DictConfig) -> Path:
    """``<output_dir>/<name>/<timestamp>``, created here, unique even for runs started in the same second (by
    other processes too: the folder is claimed with an exclusive ``mkdir``)."""
    base = Path(cfg.get("output_dir", "runs")) / str(cfg.get("name", "run"))
    base.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir, n = base / stamp, 1
    while True:
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            run_dir = base / f"{stamp}-{n}"
            n += 1


def resume_target(path: str | Path) -> tuple[Path, Path]:
    """``(run_dir, checkpoint)`` for ``--resume``, given a run folder (its newest complete checkpoint) or a
    checkpoint file in one; a 0-byte, truncated or foreign checkpoint is a one-line error naming it."""
    run_dir, ckpt = resume_checkpoint(path)
    if not (run_dir / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"cannot resume: no {CONFIG_NAME} in run folder {run_dir}")
    return run_dir, ckpt


class SkipReport(L.Callback):
    """Points the data module's bad-sample skipping at ``<run>/skipped.jsonl`` and logs the number of skipped
    clips (``data/skipped_clips``) after each validation; ``metrics.json`` carries it too."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / SKIPPED_FILE

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if hasattr(datamodule, "report_skips_to"):
            datamodule.report_skips_to(self.path)
        else:  # another data module: point any SkipBadSamples it holds at the report
            for value in vars(datamodule or object()).values():
                if isinstance(value, SkipBadSamples):
                    value.report_path = self.path

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            pl_module.log(
                "data/skipped_clips", float(count_skipped(self.path)["clips"]), sync_dist=False, rank_zero_only=True
            )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        counts = count_skipped(self.path)
        if counts["clips"] and trainer.is_global_zero:
            log.warning("%d clip(s) were skipped (%d time(s)); see %s", counts["clips"], counts["events"], self.path)


def build_trainer(
    cfg: DictConfig, run_dir: Path, extra_callbacks: Sequence[L.Callback] = (), resume_step: int | None = None
) -> L.Trainer:
    """The Lightning trainer writing checkpoints, logs and callbacks' files into ``run_dir``.

    Callbacks, loggers, the checkpoint callback and the trainer's own entries (strategy, plugins, profiler) are
    built from ``_target_`` entries; a callback entry set to null (``callbacks.samples=null``) is left out.
    ``resume_step`` (the checkpoint's global step) makes the loggers continue the run's logs from that step.
    """
    callbacks: list[L.Callback] = [
        build_checkpoint(cfg.get("checkpoint"), run_dir),
        TrainingRNGState(),
        SkipReport(run_dir),
        FinalValidation(),
        *extra_callbacks,
    ]
    user_callbacks = instantiate(cfg.get("callbacks", {}) or {}, "callbacks")
    callbacks += [c for c in user_callbacks.values() if c is not None]
    loggers = build_loggers(cfg.get("loggers", DEFAULT_LOGGERS), run_dir, resume_step)
    trainer_args = instantiate(cfg.get("trainer", {}) or {}, "trainer")  # nested _target_ entries: strategy, plugins
    if (
        trainer_args.get("enable_progress_bar", True)
        and _RICH_AVAILABLE
        and not any(isinstance(c, ProgressBar) for c in callbacks)
    ):
        callbacks.append(StepProgressBar())
    plugins = list(trainer_args.pop("plugins", None) or [])
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return L.Trainer(
        default_root_dir=str(run_dir), callbacks=callbacks, logger=loggers or False, plugins=plugins, **trainer_args
    )


def build_checkpoint(node: DictConfig | None, run_dir: Path) -> L.Callback:
    """The checkpoint callback writing to ``run_dir/checkpoints``: a ``_target_`` entry, or a mapping of
    ``ModelCheckpoint`` arguments (``save_last`` defaults to true)."""
    dirpath = str(run_dir / "checkpoints")
    if isinstance(node, DictConfig) and "_target_" in node:
        takes_dirpath = "dirpath" in parameters(import_target(node["_target_"], key="checkpoint._target_"))
        return instantiate(
            node, "checkpoint", **({"dirpath": dirpath} if takes_dirpath and "dirpath" not in node else {})
        )
    args = OmegaConf.to_container(node, resolve=True) if node is not None else {}
    args.setdefault("save_last", True)
    return ModelCheckpoint(dirpath=dirpath, **args)


def build_loggers(entries: Sequence[Any] | None, run_dir: Path, resume_step: int | None = None) -> list[Logger]:
    """Loggers from preset names (:data:`LOGGER_PRESETS`) or ``_target_`` entries; the run folder fills ``save_dir``
    and, on resume, ``resume_step`` of the loggers that take them and do not set them."""
    loggers = []
    for i, entry in enumerate(entries or ()):
        if entry is None:
            continue
        node = OmegaConf.create(LOGGER_PRESETS[entry]) if isinstance(entry, str) else entry
        params = parameters(import_target(node["_target_"], key=f"loggers.{i}._target_"))
        run = {"save_dir": str(run_dir), "resume_step": resume_step}
        extra = {
            k: v for k, v in run.items() if k in params and k not in node and (k != "resume_step" or v is not None)
        }
        loggers.append(instantiate(node, f"loggers.{i}", **extra))
    return loggers


def checkpoint_step(ckpt_path: Path | None) -> int | None:
    """The global step of a checkpoint file (None for none or a sharded folder); reads it memory-mapped."""
    if ckpt_path is None or Path(ckpt_path).is_dir():
        return None
    return int(torch_load(ckpt_path, "Lightning checkpoint", mmap=True)["global_step"])


def required_inputs(module: L.LightningModule) -> dict[str, list[str]]:
    """``{"adapter 'hands' (HandPriorAdapter)": ["hand_prior"], ...}``: the batch keys each part of the model reads."""
    conditioning = getattr(module, "conditioning", None)
    adapters = getattr(conditioning, "adapters", None) or {}
    return {
        f"conditioning adapter '{name}' ({type(a).__name__})": list(getattr(a, "input_keys", ()))
        for name, a in adapters.items()
    }


def check_data_for_model(datamodule: L.LightningDataModule, module: L.LightningModule) -> None:
    """Raise (naming the clip and the adapter) when a dataset's clips lack a key the model's adapters read,
    before training starts rather than at the first batch that holds such a clip."""
    needed = required_inputs(module)
    datasets = datamodule.datasets() if hasattr(datamodule, "datasets") else {}
    for dataset in datasets.values():
        inner = dataset.dataset if isinstance(dataset, SkipBadSamples) else dataset
        if hasattr(inner, "require_keys"):
            inner.require_keys(needed)


def build(
    cfg: DictConfig, run_dir: Path, resume_step: int | None = None
) -> tuple[L.Trainer, L.LightningModule, L.LightningDataModule]:
    """Seed and build the data, the model and the trainer from ``cfg``; checks that the data has what the model reads."""
    L.seed_everything(int(cfg.get("seed", 0)), workers=True)
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(str(cfg.float32_matmul_precision))
    datamodule = instantiate(cfg.data, "data")
    module = instantiate(cfg.model, "model")
    check_data_for_model(datamodule, module)
    trainer = build_trainer(cfg, run_dir, resume_step=resume_step)
    return trainer, module, datamodule


def fit(
    trainer: L.Trainer,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    cfg: DictConfig,
    run_dir: Path,
    ckpt_path: Path | None = None,
) -> None:
    """Remove a killed run's temporary files, save the resolved config (new runs, rank zero) and fit,
    resuming from ``ckpt_path`` when given."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        for path in remove_orphaned_temps(run_dir):
            log.info("removed %s, left by a killed write", path)
        if ckpt_path is None:
            write_text(run_dir / CONFIG_NAME, to_yaml(cfg))
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)


def train(cfg: DictConfig, run_dir: Path, ckpt_path: Path | None = None) -> tuple[L.Trainer, L.LightningModule]:
    """Build everything from ``cfg`` (already validated) and fit."""
    trainer, module, datamodule = build(cfg, run_dir, resume_step=checkpoint_step(ckpt_path))
    fit(trainer, module, datamodule, cfg, run_dir, ckpt_path)
    return trainer, module


def load_run_config(run_dir: Path, overrides: Sequence[str] = ()) -> DictConfig:
    return prepare_config(run_dir / CONFIG_NAME, overrides)


def load_run_module(run_dir: Path, weights: Path | None = None) -> L.LightningModule:
    """A run's module with its trained weights (``weights``, default the run's ``weights/model.safetensors``), in
    eval mode; frozen VAE weights come from its own config."""
    from itryon.training.weights import load_trained_weights

    cfg = load_run_config(run_dir, ["model.init_from=null"])  # the run's own weights replace any starting point
    module = instantiate(cfg.model, "model")
    load_trained_weights(module, weights or run_dir / WEIGHTS)
    return module.eval()
