"""Exact resume: SIGKILL at a step, --resume, and the per-step losses equal an uninterrupted run's bit for bit."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from reliability_helpers import SYNTH, only_run, run_child
from torch.utils.data import Dataset
from torchdata.stateful_dataloader import StatefulDataLoader

from itryon.cli.train import main as train
from itryon.data.datamodule import SkipBadSamples

# 8 clips in batches of 2: 4 steps per epoch; checkpoints every 2 steps, validation every 2 (at the checkpoints)
RUN = [*SYNTH, "trainer.max_steps=4", "trainer.val_check_interval=2"]
LONGER = ["trainer.max_steps=6"]  # the epoch-boundary case


def _log(run: Path) -> list[tuple[str, str, str, str]]:
    """(step, epoch, train/loss, val/loss) of every row of the run's metrics.csv, as written."""
    assert [p.name for p in (run / "logs").iterdir() if p.name.startswith("csv")] == ["csv"]  # no csv_1
    with (run / "logs" / "csv" / "metrics.csv").open() as f:
        return [(r["step"], r["epoch"], r.get("train/loss", ""), r.get("val/loss", "")) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[tuple[str, str, str, str]]:
    out = tmp_path_factory.mktemp("uninterrupted")
    assert train([*RUN, f"output_dir={out}", "name=ref"]) == 0
    return _log(only_run(out))


def _kill_and_resume(tmp_path: Path, step: int, extra: list[str] = []) -> Path:  # noqa: B006 - not mutated
    args = [
        *RUN,
        *extra,
        f"output_dir={tmp_path}",
        "name=killed",
        f"callbacks.kill={{_target_: kill_switch.KillAt, step: {step}}}",
    ]
    code = f"import sys; from itryon.cli.train import main; sys.exit(main({args!r}))"
    proc = run_child(code, ITRYON_TARGET_PACKAGES="kill_switch")
    assert proc.returncode == -9, proc.stderr[-3000:]
    run = only_run(tmp_path)
    assert (
        torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] < step + 1
    )
    assert train(["--resume", str(run), "callbacks.kill=null"]) == 0
    assert only_run(tmp_path) == run
    return run


def test_sigkill_mid_epoch_then_resume_gives_the_same_losses_bit_for_bit(uninterrupted, tmp_path):
    run = _kill_and_resume(tmp_path, step=3)  # killed inside step 4, resumed from step 2's checkpoint (validated there)
    resumed = _log(run)
    train_rows = [r for r in resumed if r[2]]
    assert [r[0] for r in train_rows] == [str(i) for i in range(4)]  # every step once: appended, not duplicated
    assert resumed == uninterrupted


@pytest.mark.slow
def test_sigkill_after_an_epoch_boundary_then_resume_gives_the_same_losses(tmp_path):
    out = tmp_path / "ref"
    assert train([*RUN, *LONGER, f"output_dir={out}", "name=ref"]) == 0
    uninterrupted = _log(only_run(out))
    run = _kill_and_resume(
        tmp_path / "killed", step=5, extra=LONGER
    )  # killed inside step 6, resumed from step 4 (end of epoch 0)
    # Lightning counts one epoch more after resuming from a checkpoint taken at an epoch's last batch; the steps,
    # the batches and every loss are the same
    without_epoch = [(step, loss, val) for step, _, loss, val in _log(run)]
    assert without_epoch == [(step, loss, val) for step, _, loss, val in uninterrupted]


class RandomPerSample(Dataset):
    """Each sample draws from the (worker's) global RNGs, as a random crop or flip would."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int) -> dict:
        import random

        import numpy as np

        return {
            "i": torch.tensor(i),
            "torch": torch.rand(()),
            "numpy": torch.tensor(np.random.rand()),
            "python": torch.tensor(random.random()),
        }


def _loader() -> StatefulDataLoader:
    return StatefulDataLoader(SkipBadSamples(RandomPerSample(), validate=False), batch_size=2, shuffle=True, num_workers=2,
                              collate_fn=lambda s: {k: torch.stack([x[k] for x in s]) for k in s[0]})  # fmt: skip


def test_worker_rng_states_and_the_sampler_position_are_restored():
    torch.manual_seed(0)
    loader = _loader()
    it = iter(loader)
    head = [next(it) for _ in range(2)]
    state = loader.state_dict()
    tail = list(it)
    torch.manual_seed(123)  # a new process: other global seeds until the trainer restores them
    again = _loader()
    again.load_state_dict(state)
    resumed = list(again)
    assert len(head) + len(tail) == 6 and len(resumed) == len(tail)
    for a, b in zip(tail, resumed):
        assert all(torch.equal(a[k], b[k]) for k in a), (a, b)
