"""A training run: its folder, its trainer, and resuming it."""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from itryon.config import ConfigError, instantiate, load_config, to_yaml, validate
from itryon.io_utils import write_text

CONFIG_NAME = "config.yaml"
LAST_CHECKPOINT = "checkpoints/last.ckpt"
LOGGERS = {"tensorboard", "csv"}


def root_schema() -> dict[str, Any]:
    """Allowed top-level keys of a training config and how each is checked."""
    return {
        "name": str,
        "seed": int,
        "output_dir": str,
        "paths": None,  # free-form local paths that other entries interpolate (${paths.x})
        "float32_matmul_precision": str,
        "model": None,  # a _target_ node (TryOnModule)
        "data": None,  # a _target_ node (a LightningDataModule)
        "trainer": L.Trainer,
        "checkpoint": ModelCheckpoint,
        "callbacks": None,  # mapping name -> _target_ node
        "loggers": list,
    }


def prepare_config(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Load, compose and validate a training config; raises :class:`ConfigError` before anything is built."""
    cfg = load_config(path, overrides)
    validate(cfg, root_schema())
    for key in ("model", "data"):
        if key not in cfg or not isinstance(cfg[key], DictConfig) or "_target_" not in cfg[key]:
            raise ConfigError(f"config {path} needs a '{key}' entry with a _target_")
    loggers = cfg.get("loggers", ["tensorboard", "csv"])
    unknown = sorted(set(loggers) - LOGGERS)
    if unknown:
        raise ConfigError(f"unknown logger(s) {unknown} in 'loggers'; choose from {sorted(LOGGERS)}")
    return cfg


def new_run_dir(cfg: DictConfig) -> Path:
    """``<output_dir>/<name>/<timestamp>``, unique even for runs started in the same second."""
    base = Path(cfg.get("output_dir", "runs")) / str(cfg.get("name", "run"))
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = base / stamp
    n = 1
    while run_dir.exists():
        run_dir = base / f"{stamp}-{n}"
        n += 1
    return run_dir


def resume_target(path: str | Path) -> tuple[Path, Path]:
    """``(run_dir, checkpoint)`` for ``--resume``, given a run folder or a checkpoint file in one."""
    p = Path(path)
    if p.suffix == ".ckpt":  # a file, or a folder for sharded (distributed) checkpoints
        ckpt = p
        run_dir = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    else:
        run_dir, ckpt = p, p / LAST_CHECKPOINT
    if not ckpt.exists():
        raise FileNotFoundError(f"cannot resume: no checkpoint at {ckpt}")
    if not (run_dir / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"cannot resume: no {CONFIG_NAME} in run folder {run_dir}")
    return run_dir, ckpt


def build_trainer(cfg: DictConfig, run_dir: Path, extra_callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    """The Lightning trainer writing checkpoints, logs and callbacks' files into ``run_dir``."""
    ckpt_args = OmegaConf.to_container(cfg.get("checkpoint", {}), resolve=True) or {}
    ckpt_args.setdefault("save_last", True)
    checkpoint = ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), **ckpt_args)
    callbacks: list[L.Callback] = [checkpoint, *extra_callbacks]
    user_callbacks = instantiate(cfg.get("callbacks", {}) or {}, "callbacks")
    callbacks += list(user_callbacks.values())
    loggers = []
    for name in cfg.get("loggers", ["tensorboard", "csv"]):
        if name == "tensorboard":
            loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="logs", version="tensorboard"))
        else:
            loggers.append(CSVLogger(save_dir=str(run_dir), name="logs", version=_fresh_version(run_dir / "logs", "csv")))
    trainer_args = OmegaConf.to_container(cfg.get("trainer", {}), resolve=True) or {}
    if "strategy" in trainer_args and isinstance(trainer_args["strategy"], dict):
        trainer_args["strategy"] = instantiate(cfg.trainer.strategy, "trainer.strategy")
    return L.Trainer(default_root_dir=str(run_dir), callbacks=callbacks, logger=loggers or False, **trainer_args)


def _fresh_version(folder: Path, name: str) -> str:
    """``name``, or ``name_1``, ``name_2``... when a resumed run already wrote it (the CSV logger overwrites)."""
    version, n = name, 0
    while (folder / version / "metrics.csv").exists():
        n += 1
        version = f"{name}_{n}"
    return version


def build(cfg: DictConfig, run_dir: Path) -> tuple[L.Trainer, L.LightningModule, L.LightningDataModule]:
    """Seed, save the resolved config and build the data, the model and the trainer from ``cfg``."""
    L.seed_everything(int(cfg.get("seed", 0)), workers=True)
    if cfg.get("float32_matmul_precision"):
        torch.set_float32_matmul_precision(str(cfg.float32_matmul_precision))
    datamodule = instantiate(cfg.data, "data")
    module = instantiate(cfg.model, "model")
    trainer = build_trainer(cfg, run_dir)
    return trainer, module, datamodule


def fit(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule, cfg: DictConfig, run_dir: Path, ckpt_path: Path | None = None) -> None:
    """Save the resolved config (new runs, rank zero) and fit, resuming from ``ckpt_path`` when given."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if ckpt_path is None and int(os.environ.get("LOCAL_RANK", 0)) == 0:
        write_text(run_dir / CONFIG_NAME, to_yaml(cfg))
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)


def train(cfg: DictConfig, run_dir: Path, ckpt_path: Path | None = None) -> tuple[L.Trainer, L.LightningModule]:
    """Build everything from ``cfg`` (already validated) and fit."""
    trainer, module, datamodule = build(cfg, run_dir)
    fit(trainer, module, datamodule, cfg, run_dir, ckpt_path)
    return trainer, module


def load_run_config(run_dir: Path, overrides: Sequence[str] = ()) -> DictConfig:
    return prepare_config(run_dir / CONFIG_NAME, overrides)
