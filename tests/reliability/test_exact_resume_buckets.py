"""Exact resume with shape buckets: a run on clips of two sizes, SIGKILLed and resumed, logs the same losses."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from reliability_helpers import REPO, TINY, only_run, run_child

from itryon.cli.train import main as train
from itryon.data.manifest import read_manifest, write_manifest
from itryon.data.synthetic import write_split
from itryon.data.synthetic.spec import ClipSpec

OWN = str(REPO / "configs" / "experiment" / "own_videos.yaml")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """4 landscape clips of 9 frames and 4 portrait clips of 13: two buckets, 4 batches of 2 per epoch."""
    root = tmp_path_factory.mktemp("mixed")
    write_split(root, "train", 4, seed=0, spec=ClipSpec(num_frames=9, height=48, width=64))
    write_split(root, "val", 4, seed=0, spec=ClipSpec(num_frames=13, height=64, width=48))
    write_manifest(root / "all.jsonl", read_manifest(root / "train.jsonl") + read_manifest(root / "val.jsonl"))
    return root / "all.jsonl"


def overrides(manifest: Path, out: Path, name: str) -> list[str]:
    # random temporal crops, so that resuming must also restore the random state of the crops
    return [
        "--config",
        OWN,
        *TINY,
        f"data.train.manifest={manifest}",
        f"data.val.manifest={manifest}",
        "data.random_crops=true",
        "data.buckets.frames=[5,9]",
        "trainer.max_steps=6",
        f"output_dir={out}",
        f"name={name}",
    ]


def losses(run: Path) -> list[tuple[str, str]]:
    with (run / "logs" / "csv" / "metrics.csv").open() as f:
        return [(r["step"], r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


def test_a_bucketed_run_killed_in_its_second_epoch_resumes_with_the_same_losses(mixed: Path, tmp_path: Path) -> None:
    assert train(overrides(mixed, tmp_path / "ref", "ref")) == 0
    reference = losses(only_run(tmp_path / "ref"))
    assert len(reference) == 6
    args = [*overrides(mixed, tmp_path / "k", "killed"), "callbacks.kill={_target_: kill_switch.KillAt, step: 5}"]
    proc = run_child(
        f"import sys; from itryon.cli.train import main; sys.exit(main({args!r}))", ITRYON_TARGET_PACKAGES="kill_switch"
    )
    assert proc.returncode == -9, proc.stderr[-3000:]
    run = only_run(tmp_path / "k")
    assert train(["--resume", str(run), "callbacks.kill=null"]) == 0
    assert losses(run) == reference
