"""``train.py`` end to end on the default tiny config: run folder contents, config errors, resume."""

from __future__ import annotations

import csv
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
    "callbacks.throughput.window=2",
]


def only_run_dir(root: Path) -> Path:
    runs = [p for p in root.glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    assert main([*FAST, f"output_dir={root}", "name=e2e"]) == 0
    return only_run_dir(root)


def test_default_run_writes_the_run_folder(trained_run: Path) -> None:
    run = trained_run
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
    rows = list(csv.DictReader((run / "logs" / "csv" / "metrics.csv").open()))
    speeds = [float(r["train/device/samples_per_sec"]) for r in rows if r.get("train/device/samples_per_sec")]
    flops = [float(r["train/device/flops_per_sec"]) for r in rows if r.get("train/device/flops_per_sec")]
    assert len(speeds) >= 2 and all(v > 0 for v in speeds) and len(flops) >= 2 and all(v > 0 for v in flops)
    assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))


def test_a_fit_ends_with_a_validation_of_its_last_weights(tmp_path: Path) -> None:
    """No validation falls on a step (the interval is longer than the run), yet the fit writes metrics.json with
    the reference block and samples at its last step."""
    overrides = [o for o in FAST if not o.startswith("trainer.val_check_interval")]
    assert main([*overrides, "trainer.val_check_interval=100", f"output_dir={tmp_path}", "name=final"]) == 0
    run = only_run_dir(tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 4 and "val/ssim" in metrics["metrics"]
    copy_ssim = metrics["reference"]["copy_input"]["val/ssim"]
    assert 0.3 < copy_ssim < 0.8 and metrics["reference"]["garment_mean_fill"]["val/psnr"] > 10
    assert [p.name for p in (run / "samples").glob("*step000004_0.png")]


def test_killed_run_resumes_where_it_stopped(tmp_path: Path) -> None:
    assert main([*FAST, f"output_dir={tmp_path}", "name=resume"]) == 0
    run = only_run_dir(tmp_path)
    first = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert first["global_step"] == 4
    assert main(["--resume", str(run), "trainer.max_steps=6"]) == 0
    second = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert second["global_step"] == 6
    assert only_run_dir(tmp_path) == run  # same folder, no new run


def test_print_config_prints_resolved_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--print-config", "model.lr=0.5"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.5" in out and "_target_: itryon.training.TryOnModule" in out


def test_unknown_key_fails_before_training(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "train.py", "model.no_such_key=1", f"output_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "no_such_key" in proc.stderr and "valid keys:" in proc.stderr and "backbone" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing was built or written


def test_runs_started_together_get_their_own_folders(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from omegaconf import OmegaConf

    from itryon.training.run import new_run_dir

    cfg = OmegaConf.create({"output_dir": str(tmp_path), "name": "same"})
    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: new_run_dir(cfg), range(16)))
    assert len(set(folders)) == 16  # each claimed with an exclusive mkdir, even within one second
    assert all(f.is_dir() and f.parent == tmp_path / "same" for f in folders)


def test_a_run_that_fails_to_build_leaves_no_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dim \(64\) must be divisible by num_heads \(5\)"):
        main([f"output_dir={tmp_path}", "model.backbone.num_heads=5"])
    assert not any(tmp_path.iterdir())


def test_wrong_type_names_expected_and_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model.lr=fast"]) == 2
    assert "'model.lr' expects float, got str 'fast'" in capsys.readouterr().err


def test_default_config_composes_from_pieces() -> None:
    from itryon.config import origin_of
    from itryon.training.run import prepare_config

    cfg = prepare_config(CONFIG_ROOT / "default.yaml")
    assert origin_of(cfg, "model.backbone.dim").endswith("configs/model/tiny_vace.yaml")
    assert origin_of(cfg, "data.train._target_").endswith("configs/data/synthetic.yaml")
    assert origin_of(cfg, "trainer.accelerator").endswith("configs/trainer/cpu.yaml")
    assert origin_of(cfg, "trainer.max_steps").endswith("configs/default.yaml")  # the recipe sets its length
    assert cfg.data.train._target_ == "itryon.data.synthetic.SyntheticTryOnDataset"


def test_infer_then_evaluate_on_a_synthetic_split(trained_run: Path, tmp_path: Path) -> None:
    from itryon.cli.main import main as itryon

    data, preds = tmp_path / "data", tmp_path / "preds"
    assert itryon(["synth", "--out", str(data), "--split", "val", "--num", "2", "--seed", "1", "--no-progress"]) == 0
    manifest = data / "val.jsonl"
    assert (
        itryon(
            [
                "infer",
                "--run",
                str(trained_run),
                "--manifest",
                str(manifest),
                "--out",
                str(preds),
                "--steps",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    ids = sorted(json.loads(line)["id"] for line in manifest.read_text().splitlines())
    assert sorted(p.stem for p in preds.glob("*.mp4")) == ids
    out = tmp_path / "metrics.json"
    assert (
        itryon(
            [
                "evaluate",
                "--pred",
                str(preds),
                "--manifest",
                str(manifest),
                "--metrics",
                "ssim,psnr,isr",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    text = json.dumps(result)
    assert "ssim" in text and "isr" in text
    # a barely trained model is far from the ground truth: a strict gate fails with exit code 1
    assert (
        itryon(
            [
                "evaluate",
                "--pred",
                str(preds),
                "--manifest",
                str(manifest),
                "--metrics",
                "psnr",
                "--out",
                str(out),
                "--fail-if",
                "psnr<60",
                "--no-progress",
            ]
        )
        == 1
    )


def test_infer_names_missing_weights(tmp_path: Path, trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from itryon.cli.main import main as itryon

    code = itryon(
        [
            "infer",
            "--run",
            str(trained_run),
            "--manifest",
            str(tmp_path / "none.jsonl"),
            "--out",
            str(tmp_path),
            "--weights",
            str(tmp_path / "w.safetensors"),
        ]
    )
    assert code == 2
    assert "w.safetensors" in capsys.readouterr().err


def test_ema_experiment_exports_averaged_weights(trained_run: Path, tmp_path: Path) -> None:
    ema_args = ["--config", str(CONFIG_ROOT / "experiment" / "ema.yaml"), *FAST, f"output_dir={tmp_path}", "name=e2e"]
    assert main([*ema_args, "callbacks.ema.update_starting_at_step=1", "callbacks.ema.decay=0.5"]) == 0
    averaged = load_file(only_run_dir(tmp_path) / "weights" / "model.safetensors")
    plain = load_file(trained_run / "weights" / "model.safetensors")  # the same run without EMA
    assert averaged.keys() == plain.keys()
    changed = [k for k in plain if not torch.equal(plain[k], averaged[k])]
    assert changed and all(torch.isfinite(averaged[k]).all() for k in changed)
