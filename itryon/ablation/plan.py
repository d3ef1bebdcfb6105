"""The cells of an ablation: which experiment files, which seeds, where each cell lives, and the guard that
keeps one output folder to one set of settings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from itryon.ablation.cell import CellSpec, EvalSettings, read_json, write_json_atomic
from itryon.config import CONFIG_ROOT, ConfigError

EXPERIMENT_DIR = CONFIG_ROOT / "experiment"
DEFAULT_EXPERIMENTS = (
    "itryon_full",
    "baseline",
    "no_hand_prior",
    "no_action_captions",
    "no_arope",
    "no_ac_loss",
    "arope_literal",
)
SETTINGS = "settings.json"


def parse_list(text: str, what: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"{what} is empty: expected a comma-separated list")
    duplicates = sorted({t for t in items if items.count(t) > 1})
    if duplicates:
        raise ValueError(f"{what} names {duplicates} more than once")
    return items


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for item in parse_list(text, "--seeds"):
        try:
            seeds.append(int(item))
        except ValueError:
            raise ValueError(f"--seeds: {item!r} is not an integer (expected e.g. 0,1,2)") from None
    return seeds


def resolve_experiment(name: str, experiment_dir: str | Path = EXPERIMENT_DIR) -> tuple[str, Path]:
    """``(name, YAML file)``: a bare name is ``<experiment_dir>/<name>.yaml``; a path to a YAML file is taken
    as is and named by its stem."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"experiment file not found: {path}")
        return path.stem, path
    folder = Path(experiment_dir)
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise FileNotFoundError(f"no experiment {name!r}: {path} does not exist; experiments in {folder}: {known}")
    return name, path


def base_config_overrides(path: str | Path) -> list[str]:
    """The leaves of a YAML file as ``key=value`` overrides (lists stay whole), to lay it over every experiment.

    The file holds keys only. Its ``defaults`` list may name ``/default`` alone (an experiment built directly on
    the default config, such as ``configs/experiment/study.yaml``): every experiment starts from the default
    already, so the file's own keys are what it adds. Any other ``defaults`` list is refused, since each
    experiment brings its own.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--base-config: file not found: {path}")
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"--base-config {path}: expected a mapping at the top level")
    if "defaults" in cfg:
        defaults = OmegaConf.to_container(cfg.defaults)
        if defaults not in (["/default"], ["default"]):
            raise ConfigError(
                f"--base-config {path}: has the defaults list {defaults}; it may only set keys (or name /default "
                "alone), each experiment brings its own defaults"
            )
        cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "defaults"])
    out: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, DictConfig) and len(node) > 0:
            for key in node:
                walk(node._get_node(key), f"{prefix}.{key}" if prefix else str(key))
            return
        if isinstance(node, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(node, resolve=False)
        else:
            value = node._value()
        out.append(f"{prefix}={json.dumps(value)}")

    walk(cfg, "")
    return out


def cell_folder(out: str | Path, experiment: str, seed: int) -> Path:
    return Path(out) / "cells" / experiment / f"seed{seed}"


def cell_command(
    out: str | Path, experiment: str, config: Path, seed: int, overrides: Sequence[str], ev: EvalSettings
) -> str:
    """The ``itryon ablate`` command line that runs this one cell (with the same settings)."""
    import shlex

    default = Path(config).resolve() == (EXPERIMENT_DIR / f"{experiment}.yaml").resolve()
    words = [
        "itryon",
        "ablate",
        "--experiments",
        experiment if default else str(config),
        "--seeds",
        str(seed),
        "--out",
        str(out),
    ]
    words += ["--metrics", ",".join(ev.metrics), "--eval-split", ev.split]
    if ev.num_clips is not None:
        words += ["--num-eval-clips", str(ev.num_clips)]
    if ev.data_seed is not None:
        words += ["--eval-seed", str(ev.data_seed)]
    if ev.manifest is not None:
        words += ["--eval-manifest", ev.manifest]
    if ev.sample_steps is not None:
        words += ["--sample-steps", str(ev.sample_steps)]
    if ev.sample_seed:
        words += ["--sample-seed", str(ev.sample_seed)]
    if overrides:
        words += ["--overrides", *overrides]
    return shlex.join(words)


def plan_cells(
    out: str | Path,
    experiments: Sequence[str],
    seeds: Sequence[int],
    overrides: Sequence[str],
    ev: EvalSettings,
    experiment_dir: str | Path = EXPERIMENT_DIR,
) -> list[CellSpec]:
    """Every (experiment, seed) cell, experiments outermost, in the order given."""
    resolved = [resolve_experiment(e, experiment_dir) for e in experiments]
    names = [n for n, _ in resolved]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"--experiments: several files are named {clashes}; cells are stored by experiment name")
    return [
        CellSpec(
            experiment=name,
            config=str(path),
            seed=seed,
            folder=str(cell_folder(out, name, seed)),
            overrides=tuple(overrides),
            evaluation=ev,
            command=cell_command(out, name, path, seed, overrides, ev),
        )
        for name, path in resolved
        for seed in seeds
    ]


def check_settings(out: str | Path, overrides: Sequence[str], ev: EvalSettings) -> None:
    """Record the settings of ``out`` the first time; later runs into it must use the same ones, since their
    cells are tabulated together. Raises naming the setting that differs."""
    path = Path(out) / SETTINGS
    current = {"overrides": list(overrides), "evaluation": ev.compared()}
    if not path.is_file():
        write_json_atomic(path, current)
        return
    stored = read_json(path)
    for key in ("overrides", "evaluation"):
        old, new = stored.get(key), current[key]
        if key == "evaluation" and isinstance(old, dict):
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if diff:
                changes = "; ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in diff)
                raise ValueError(
                    f"{path}: this folder was scored with other evaluation settings ({changes}); use another --out or the same settings"
                )
        elif old != new:
            raise ValueError(
                f"{path}: this folder's cells were trained with --overrides {old}, this run asks for {new}; use another --out or the same overrides"
            )
