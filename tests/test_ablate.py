"""``itryon ablate`` end to end on 2-step trainings: the table, the results file and the chart, skipping
finished cells, resuming a cell stopped mid-training, and the submitit submission path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from itryon.ablation import cell as cell_module
from itryon.ablation.cell import RESULT, EvalSettings
from itryon.ablation.plan import plan_cells
from itryon.ablation.report import format_stat
from itryon.cli.main import main
from itryon.data.synthetic import SyntheticTryOnDataset
from itryon.metrics.registry import build_metric

SHAPE = {"num_frames": 5, "height": 32, "width": 32}
TINY = [
    "trainer.max_steps=2",
    "trainer.limit_val_batches=0",
    "data.batch_size=1",
    "data.train.num_clips=4",
    *(f"data.{split}.{k}={v}" for split in ("train", "val") for k, v in SHAPE.items()),
    "model.warmup_steps=0",
    "checkpoint.every_n_train_steps=1",
    "loggers=[]",
]
EXPERIMENTS, SEEDS = ["itryon_full", "baseline"], [0, 1]
ARGS = ["--experiments", ",".join(EXPERIMENTS), "--seeds", "0,1", "--num-eval-clips", "2", "--sample-steps", "1",
        "--metrics", "ssim,psnr,isr", "--device", "cpu", "--no-progress", "--overrides", *TINY]  # fmt: skip


def ablate(out: Path, *extra: str) -> int:
    return main(["ablate", "--out", str(out), *extra, *ARGS])


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ablation")
    assert ablate(out) == 0
    return out


def test_writes_the_table_the_results_file_and_the_chart(study: Path) -> None:
    results = json.loads((study / "results.json").read_text())
    cells = {(c["experiment"], c["seed"]): c for c in results["cells"]}
    assert sorted(cells) == sorted((e, s) for e in EXPERIMENTS for s in SEEDS) and results["missing_cells"] == []
    for (experiment, seed), c in cells.items():
        assert c["global_step"] == 2 and c["resumed_from_step"] is None
        assert {"ssim", "psnr", "isr"} <= set(c["metrics"]) and c["num_clips"] == 2
        assert c["wall_seconds"] == pytest.approx(c["train_seconds"] + c["eval_seconds"]) and c["train_seconds"] > 0
        assert f"--experiments {experiment} --seeds {seed} --out {study}" in c["command"]
        assert f"seed: {seed}" in (Path(c["run"]) / "config.yaml").read_text()
    # the two seeds' weights differ: the seed reaches the training
    a, b = (cells[("itryon_full", s)]["metrics"]["ssim"] for s in SEEDS)
    assert a != b
    full = results["summary"]["itryon_full"]["ssim"]
    assert full["n"] == 2 and full["mean"] == pytest.approx((a + b) / 2)
    assert full["ci"] == pytest.approx(
        12.706205 * abs(a - b) / 2, rel=1e-6
    )  # t_{0.975, 1} * s / sqrt(2), s = |a - b| / sqrt(2)
    md = (study / "results.md").read_text()
    assert f"| `ssim` ↑ | {format_stat(full)} | {format_stat(results['summary']['baseline']['ssim'])} |" in md
    assert "copy input (ref.)" in md and "garment-mean fill (ref.)" in md
    png = Image.open(study / "results.png")
    assert png.format == "PNG" and png.size[0] > 400


def test_reference_rows_are_scored_on_the_same_test_clips(study: Path) -> None:
    refs = json.loads((study / "results.json").read_text())["references"]
    clips = SyntheticTryOnDataset("test", 2, seed=2, **SHAPE)
    ssim = build_metric("ssim")
    for i in range(2):
        sample = clips[i]
        ssim.update(sample["agnostic"][None], sample["video"][None])
    assert refs["copy_input"]["ssim"] == pytest.approx(float(ssim.compute()), abs=1e-6)
    assert refs["garment_mean_fill"]["psnr"] != pytest.approx(refs["copy_input"]["psnr"])


def test_rerun_skips_finished_cells_and_resumes_a_stopped_one(study: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {p: p.stat().st_mtime_ns for p in study.glob("cells/*/*/result.json")}
    calls: list[tuple[str, int]] = []
    real_train = cell_module.train_cell

    def spy(spec):
        calls.append((spec.experiment, spec.seed))
        return real_train(spec)

    monkeypatch.setattr(cell_module, "train_cell", spy)
    assert ablate(study) == 0
    assert calls == []  # nothing trained the second time
    assert {p: p.stat().st_mtime_ns for p in study.glob("cells/*/*/result.json")} == before

    # baseline seed 1 stopped after its first step: a run that checkpointed step 1 of 2 and died
    cell = study / "cells" / "baseline" / "seed1"
    shutil.rmtree(cell)
    spec = next(c for c in plan_cells(study, ["baseline"], [1], TINY, EvalSettings()))
    real_train(replace(spec, overrides=(*spec.overrides, "trainer.max_steps=1")))
    config = OmegaConf.load(cell / "run" / "config.yaml")
    config.trainer.max_steps = 2
    OmegaConf.save(config, cell / "run" / "config.yaml")
    for name in ("trained.json", "run/weights/model.safetensors"):
        (cell / name).unlink()
    assert ablate(study) == 0
    assert calls == [("baseline", 1)]
    trained = json.loads((cell / "trained.json").read_text())
    assert trained["resumed_from_step"] == 1 and trained["global_step"] == 2
    assert (
        torch.load(cell / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
        == 2
    )
    assert (cell / "result.json").is_file() and (cell / "run" / "weights" / "model.safetensors").is_file()


def test_other_settings_into_the_same_folder_are_refused(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["ablate", "--out", str(study), *ARGS[: -len(TINY) - 1], "--num-eval-clips", "3", "--overrides", *TINY])
        == 2
    )
    assert "num_clips: 2 then, 3 now" in capsys.readouterr().err


def test_a_wrong_override_stops_before_any_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "ablate",
            "--out",
            str(tmp_path),
            "--experiments",
            "itryon_full,no_arope",
            "--seeds",
            "0",
            "--no-progress",
            "--overrides",
            "trainer.max_stepz=2",
        ]
    )
    assert code == 2
    assert "trainer.max_stepz" in capsys.readouterr().err
    assert not (tmp_path / "cells").exists() and not (tmp_path / "settings.json").exists()


def test_submitit_submission_path(study: Path, tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    from itryon.ablation.runner import run_ablation

    # a copy of a trained cell whose scoring is still to do: a submitit job (debug executor) scores it
    shutil.copytree(study / "cells" / "itryon_full" / "seed0", tmp_path / "cells" / "itryon_full" / "seed0")
    (tmp_path / "cells" / "itryon_full" / "seed0" / RESULT).unlink()
    ev = EvalSettings(metrics=("psnr",), num_clips=2, sample_steps=1)
    report = run_ablation(tmp_path, ["itryon_full"], [0], TINY, ev, launcher="submitit-debug", progress=False)
    (cell,) = report["cells"]
    original = json.loads((study / "cells" / "itryon_full" / "seed0" / RESULT).read_text())
    assert list(cell["metrics"]) == ["psnr"]
    assert cell["metrics"]["psnr"] == pytest.approx(original["metrics"]["psnr"], abs=1e-6)  # same weights, clips, noise
    jobs = [json.loads(line) for line in (tmp_path / "jobs" / "submitted.jsonl").read_text().splitlines()]
    assert [(j["experiment"], j["seed"]) for j in jobs] == [("itryon_full", 0)]
    assert (tmp_path / "results.md").is_file() and (tmp_path / "results.png").is_file()


def test_help_imports_no_heavy_module() -> None:
    code = "import sys; from itryon.cli.main import main\ntry: main(['ablate', '--help'])\nexcept SystemExit: pass\nprint(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
