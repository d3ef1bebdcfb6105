"""Learning curve of a training config: validation SSIM / PSNR against training CPU-minutes and steps.

Trains the config with the project's own training code (``itryon.training.run``), validating every
``--every`` steps on the config's validation clips (32 by default), and records after each validation the
step, the training wall time so far (validation excluded) and the ``val/*`` metrics, with the copy-the-input and
garment-mean-fill references computed on the same clips. Prints a table, writes ``<out>.json`` and ``<out>.png``
(SSIM and PSNR against minutes, the references as horizontal lines, the targets dashed).

    python benchmarks/learning_curve.py --config configs/experiment/study.yaml --every 300 \
        --out benchmarks/results/learning_curve_study [--target-ssim 0.75 --target-psnr 23] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from itryon.training.run import build, fit, new_run_dir, prepare_config  # noqa: E402


class TrainClock(L.Callback):
    """Training wall time (data loading, steps and checkpoints; validation excluded), and one record per
    validation."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._validation_start: float | None = None
        self.validation_seconds = 0.0
        self.points: list[dict[str, Any]] = []

    @property
    def train_seconds(self) -> float:
        if self._start is None:
            return 0.0
        now = self._validation_start if self._validation_start is not None else time.perf_counter()
        return now - self._start - self.validation_seconds

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:
        if self._start is not None:
            self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._validation_start is None or trainer.sanity_checking:
            return
        metrics = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and "/reference/" not in k
        }
        self.points.append(
            {"step": trainer.global_step, "train_minutes": self.train_seconds / 60.0, "metrics": metrics}
        )
        self.validation_seconds += time.perf_counter() - self._validation_start
        self._validation_start = None


def references(trainer: L.Trainer) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for callback in trainer.callbacks:
        for name, values in (getattr(callback, "reference_values", None) or {}).items():
            out.setdefault(name, {}).update({f"val/{k}": v for k, v in values.items()})
    return out


def plot(record: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    minutes = [p["train_minutes"] for p in record["points"]]
    styles = {"copy_input": ("tab:gray", "copy the input"), "garment_mean_fill": ("tab:brown", "garment-mean fill")}
    for ax, key, label in ((axes[0], "val/ssim", "SSIM"), (axes[1], "val/psnr", "PSNR (dB)")):
        ax.plot(
            minutes,
            [p["metrics"].get(key, float("nan")) for p in record["points"]],
            "o-",
            color="tab:blue",
            label="model",
        )
        for name, (colour, text) in styles.items():
            value = record["references"].get(name, {}).get(key)
            if value is not None:
                ax.axhline(value, color=colour, linestyle=":", label=text)
        target = record["targets"].get(key)
        if target is not None:
            ax.axhline(target, color="tab:red", linestyle="--", label="target")
        ax.set_xlabel("training CPU-minutes" if record["machine"]["accelerator"] == "cpu" else "training minutes")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{record['config']} ({record['machine']['description']})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/experiment/study.yaml")
    parser.add_argument("--every", type=int, default=300, help="validate every N training steps")
    parser.add_argument("--out", default="benchmarks/results/learning_curve")
    parser.add_argument("--target-ssim", type=float, default=None)
    parser.add_argument("--target-psnr", type=float, default=None)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)

    cfg = prepare_config(
        args.config,
        [*args.overrides, f"trainer.val_check_interval={args.every}", "trainer.check_val_every_n_epoch=null"],
    )
    run_dir = new_run_dir(cfg)
    trainer, module, datamodule = build(cfg, run_dir)
    clock = TrainClock()
    trainer.callbacks.append(clock)
    start = time.perf_counter()
    fit(trainer, module, datamodule, cfg, run_dir)
    wall = time.perf_counter() - start

    accelerator = "gpu" if torch.cuda.is_available() and str(cfg.trainer.get("accelerator", "cpu")) != "cpu" else "cpu"
    device = (
        torch.cuda.get_device_name(0)
        if accelerator == "gpu"
        else f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads"
    )
    record = {
        "config": args.config,
        "overrides": list(args.overrides),
        "run_dir": str(run_dir),
        "command": " ".join(["python", "benchmarks/learning_curve.py", *sys.argv[1:]]) if argv is None else None,
        "machine": {
            "accelerator": accelerator,
            "description": device,
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "wall_seconds": wall,
        "targets": {k: v for k, v in (("val/ssim", args.target_ssim), ("val/psnr", args.target_psnr)) if v is not None},
        "references": references(trainer),
        "points": clock.points,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2))
    plot(record, out.with_suffix(".png"))

    refs = record["references"]
    print(f"{'step':>6} {'minutes':>8} {'ssim':>7} {'psnr':>7}")
    for p in clock.points:
        print(
            f"{p['step']:>6} {p['train_minutes']:>8.2f} {p['metrics'].get('val/ssim', float('nan')):>7.4f} {p['metrics'].get('val/psnr', float('nan')):>7.2f}"
        )
    for name, values in refs.items():
        print(
            f"{name:>15}: ssim {values.get('val/ssim', float('nan')):.4f}  psnr {values.get('val/psnr', float('nan')):.2f}"
        )
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')} (wall {wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
