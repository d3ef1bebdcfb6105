"""One cell of an ablation: train one experiment with one seed, then score it on the held-out split.

A cell's folder holds ``run/`` (the training run folder: config, checkpoints, weights), ``trained.json`` once
training finished and ``result.json`` once it is scored. Running a cell again picks up where it stopped: a
scored cell returns its result, a trained one is only scored, and one killed mid-training resumes from its
last checkpoint (``run/checkpoints/last.ckpt``) with the config it started with.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RUN = "run"
TRAINED = "trained.json"
RESULT = "result.json"


@dataclass(frozen=True)
class EvalSettings:
    """How a trained cell is scored; the same for every cell of an ablation."""

    metrics: tuple[str, ...] = ("ssim", "psnr", "ssim_interaction", "isr")
    split: str = "test"
    num_clips: int | None = 32
    data_seed: int | None = None  # None: the split's own seed (synthetic world)
    manifest: str | None = None
    sample_steps: int | None = None  # None: the run's sampler
    sample_seed: int = 0  # batch i is sampled with sample_seed + i, in every cell
    weights_dir: str | None = None
    batch_size: int = 2
    device: str = "cpu"

    def compared(self) -> dict[str, Any]:
        """The settings that change the numbers (not where or in what batches they are computed)."""
        d = asdict(self)
        for key in ("weights_dir", "batch_size", "device"):
            d.pop(key)
        d["metrics"] = list(d["metrics"])
        return d


@dataclass(frozen=True)
class CellSpec:
    experiment: str
    config: str  # the experiment's YAML file
    seed: int
    folder: str
    overrides: tuple[str, ...] = ()
    evaluation: EvalSettings = field(default_factory=EvalSettings)
    command: str = ""  # the command line that runs this cell alone

    @property
    def result_path(self) -> Path:
        return Path(self.folder) / RESULT

    def done(self) -> bool:
        return self.result_path.is_file()


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); delete it to redo that step") from exc


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def training_overrides(spec: CellSpec) -> list[str]:
    return [*spec.overrides, f"seed={spec.seed}", f"name={spec.experiment}"]


def check_config(spec: CellSpec) -> None:
    """Compose and validate the cell's training config without building anything (raises ``ConfigError``
    naming the key), unless its run already started from a config of its own."""
    from itryon.training.run import CONFIG_NAME, prepare_config

    if not (Path(spec.folder) / RUN / CONFIG_NAME).is_file():
        prepare_config(spec.config, training_overrides(spec))


def train_cell(spec: CellSpec) -> dict[str, Any]:
    """Train (or resume) the cell's run; writes and returns ``trained.json``."""
    from itryon.training.run import (
        CONFIG_NAME,
        LAST_CHECKPOINT,
        build,
        fit,
        load_run_config,
        prepare_config,
        resume_target,
    )

    # frozen parts (VAE, text encoder) stay in eval mode on purpose; Lightning warns about it at every start
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
    run_dir = Path(spec.folder) / RUN
    if (run_dir / LAST_CHECKPOINT).exists() and (run_dir / CONFIG_NAME).is_file():
        run_dir, ckpt = resume_target(run_dir)
        cfg = load_run_config(run_dir)
        resumed_from = _checkpoint_step(ckpt)
    else:
        cfg = prepare_config(spec.config, training_overrides(spec))
        ckpt, resumed_from = None, None
    start = time.perf_counter()
    trainer, module, datamodule = build(cfg, run_dir)
    fit(trainer, module, datamodule, cfg, run_dir, ckpt)
    record = {
        "global_step": int(trainer.global_step),
        "train_seconds": time.perf_counter() - start,
        "resumed_from_step": resumed_from,
    }
    write_json_atomic(Path(spec.folder) / TRAINED, record)
    return record


def _checkpoint_step(ckpt: Path) -> int | None:
    import torch

    if not ckpt.is_file():  # a sharded checkpoint folder
        return None
    return int(torch.load(ckpt, map_location="cpu", weights_only=True).get("global_step", 0))


def evaluate_cell(spec: CellSpec) -> dict[str, Any]:
    """Score the cell's trained run on the held-out clips; returns the metrics and how they were obtained."""
    from itryon.ablation.evaluation import build_eval_dataset, eval_data_node, finite_or_none, higher_is_better, score
    from itryon.training.run import load_run_config, load_run_module

    ev = spec.evaluation
    run_dir = Path(spec.folder) / RUN
    node = eval_data_node(load_run_config(run_dir), ev.split, ev.num_clips, ev.data_seed, ev.manifest)
    dataset = build_eval_dataset(node)
    module = load_run_module(run_dir).to(ev.device)

    def predict(batch: dict[str, Any], i: int) -> Any:
        return module.generate(batch, num_steps=ev.sample_steps, seed=ev.sample_seed + i)

    start = time.perf_counter()
    metrics = score({"model": predict}, dataset, ev.metrics, ev.weights_dir, ev.batch_size, ev.device)["model"]
    return {
        "metrics": finite_or_none(metrics),
        "higher_is_better": higher_is_better(ev.metrics, list(metrics)),
        "eval_seconds": time.perf_counter() - start,
        "eval_data": node,
        "num_clips": len(dataset),
    }


def run_cell(spec: CellSpec) -> dict[str, Any]:
    """Bring the cell to its result (training and scoring what is missing); writes ``result.json``."""
    if spec.done():
        return read_json(spec.result_path)
    trained_path = Path(spec.folder) / TRAINED
    trained = read_json(trained_path) if trained_path.is_file() else train_cell(spec)
    scored = evaluate_cell(spec)
    result = {
        "experiment": spec.experiment,
        "seed": spec.seed,
        "config": spec.config,
        "command": spec.command,
        "run": str(Path(spec.folder) / RUN),
        **trained,
        **scored,
        "wall_seconds": trained["train_seconds"] + scored["eval_seconds"],
    }
    write_json_atomic(spec.result_path, result)
    return result
