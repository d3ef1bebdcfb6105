"""``train.py`` end to end on the default tiny config: run folder contents, config errors, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from itryon.cli.train import main
from itryon.config import CONFIG_ROOT

REPO = Path(__file__).resolve().parent.parent

FAST = [
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "data.batch_size=2",
    "data.train.num_clips=8",
    "data.val.num_clips=2",
    "model.sampler.num_steps=2",
    "model.warmup_steps=0",
    "checkpoint.every_n_train_steps=2",
]


def only_run_dir(root: Path) -> Path:
    runs = [p for p in root.glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_default_run_writes_the_run_folder(tmp_path: Path) -> None:
    assert main([*FAST, f"output_dir={tmp_path}", "name=e2e"]) == 0
    run = only_run_dir(tmp_path)
    assert run.parent.name == "e2e"
    assert "trainer:" in (run / "config.yaml").read_text()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    weights = load_file(run / "weights" / "model.safetensors")
    assert any(k.startswith("backbone.") for k in weights) and not any(k.startswith("vae.") for k in weights)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 4
    assert {"val/loss", "val/ssim", "val/psnr"} <= set(metrics["metrics"])
    assert -1.0 <= metrics["metrics"]["val/ssim"] <= 1.0
    assert 0.0 <= metrics["metrics"]["val/isr"] <= 1.0
    assert metrics["protocols"]["ssim"]["metric"] == "ssim"
    assert list((run / "samples").glob("*.mp4")) and list((run / "samples").glob("*.png"))
    assert (run / "logs" / "csv" / "metrics.csv").is_file()
    assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))


def test_killed_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    assert main([*FAST, f"output_dir={tmp_path}", "name=resume"]) == 0
    run = only_run_dir(tmp_path)
    first = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert first["global_step"] == 4
    assert main(["--resume", str(run), "trainer.max_steps=6"]) == 0
    second = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert second["global_step"] == 6
    assert only_run_dir(tmp_path) == run  # same folder, no new run


def test_print_config_prints_resolved_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--print-config", "model.lr=0.5"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.5" in out and "_target_: itryon.training.TryOnModule" in out


def test_unknown_key_fails_before_training(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "train.py", "model.no_such_key=1", f"output_dir={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "no_such_key" in proc.stderr and "valid keys:" in proc.stderr and "backbone" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing was built or written


def test_wrong_type_names_expected_and_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model.lr=fast"]) == 2
    assert "'model.lr' expects float, got str 'fast'" in capsys.readouterr().err


def test_default_config_composes_from_pieces() -> None:
    from itryon.config import origin_of
    from itryon.training.run import prepare_config

    cfg = prepare_config(CONFIG_ROOT / "default.yaml")
    assert origin_of(cfg, "model.backbone.dim").endswith("configs/model/tiny_vace.yaml")
    assert origin_of(cfg, "data.train._target_").endswith("configs/data/synthetic.yaml")
    assert origin_of(cfg, "trainer.max_steps").endswith("configs/trainer/cpu.yaml")
    assert cfg.data.train._target_ == "itryon.data.synthetic.SyntheticTryOnDataset"
