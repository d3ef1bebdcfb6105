"""Two CPU processes over gloo with FSDP2 (ModelParallelStrategy): one run folder, gathered weights, resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from itryon.config import CONFIG_ROOT, instantiate
from itryon.training.run import prepare_config

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = CONFIG_ROOT / "experiment" / "fsdp2_cpu.yaml"
FAST = [
    "data.train.num_clips=8",
    "data.val.num_clips=2",
    "data.batch_size=2",
    "trainer.val_check_interval=2",
    "trainer.log_every_n_steps=1",
    "model.sampler.num_steps=2",
    "checkpoint.every_n_train_steps=2",
]


def train(args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.distributed
def test_fsdp2_two_process_run_gathers_weights_and_resumes(tmp_path: Path) -> None:
    train(["--config", str(EXPERIMENT), *FAST, "trainer.max_steps=2", f"output_dir={tmp_path}"])
    runs = list(tmp_path.glob("fsdp2_cpu/*"))
    assert len(runs) == 1, runs  # both ranks wrote into one folder
    run = runs[0]
    assert (run / "checkpoints" / "last.ckpt").is_dir()  # sharded checkpoint, one file per rank
    assert len(list((run / "checkpoints" / "last.ckpt").glob("*.distcp"))) == 2
    # the exported weights are full tensors with the single-process module's names and shapes
    reference = instantiate(prepare_config(EXPERIMENT, FAST).model, "model").state_dict()
    weights = load_file(run / "weights" / "model.safetensors")
    expected = {k: v.shape for k, v in reference.items() if not k.startswith("vae.")}
    assert {k: v.shape for k, v in weights.items()} == expected
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 2

    train(["--resume", str(run), "trainer.max_steps=4"])
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 4
    resumed = load_file(run / "weights" / "model.safetensors")
    assert any(not torch.equal(resumed[k], weights[k]) for k in weights)  # training went on
