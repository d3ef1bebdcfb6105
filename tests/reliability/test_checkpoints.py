"""Checkpoints and outputs are atomic on any filesystem, never truncated, shared with the user's umask."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_helpers import SYNTH, only_run, run_child

from itryon.cli.train import main as train
from itryon.io_utils import TEMP_TAG, atomic_path, remove_orphaned_temps, write_json, write_text
from itryon.training.checkpoints import AtomicCheckpointIO

SHM = Path("/dev/shm")


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = write_text(tmp_path / "metrics.json", "old\n")
    with pytest.raises(RuntimeError, match="writer died"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_the_temporary_file_is_in_the_targets_own_folder_whatever_tmpdir_says(tmp_path, monkeypatch):
    elsewhere = tmp_path / "tmpdir"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read $TMPDIR
    seen = []
    with atomic_path(tmp_path / "run" / "last.ckpt") as tmp:
        seen.append(tmp)
        tmp.write_bytes(b"x")
    assert seen[0].parent == tmp_path / "run" and seen[0].name.startswith(".last.ckpt" + TEMP_TAG)
    assert not any(elsewhere.iterdir())


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_outputs_get_the_permissions_of_the_users_umask(tmp_path, umask, mode):
    from callbacks.export import save_safetensors_atomic
    from itryon.data.manifest import write_manifest
    from itryon.data.video_io import write_video

    old = os.umask(umask)
    try:
        files = [
            write_json(tmp_path / "metrics.json", {"a": 1}),
            write_manifest(tmp_path / "m.jsonl", [{"id": "x"}]),
            write_video(tmp_path / "v.mp4", np.zeros((2, 8, 8, 3), np.uint8), lossless=True),
        ]
        save_safetensors_atomic({"w": torch.zeros(2)}, tmp_path / "weights" / "model.safetensors")
        files.append(tmp_path / "weights" / "model.safetensors")
        AtomicCheckpointIO().save_checkpoint(
            {"state_dict": {}, "global_step": 0}, tmp_path / "checkpoints" / "last.ckpt"
        )
        files.append(tmp_path / "checkpoints" / "last.ckpt")
        folder = write_video(tmp_path / "mask", np.zeros((2, 8, 8, 1), np.uint8))
        files += sorted(folder.iterdir())
    finally:
        os.umask(old)
    assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {f.name: oct(mode) for f in files}
    assert oct(stat.S_IMODE(folder.stat().st_mode)) == oct(0o777 & ~umask)


def test_orphaned_temporaries_are_removed(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    orphan_file = tmp_path / "checkpoints" / f".last.ckpt{TEMP_TAG}abc123"
    orphan_file.write_bytes(b"half a checkpoint")
    orphan_dir = tmp_path / "samples" / f".mask{TEMP_TAG}xyz"
    orphan_dir.mkdir(parents=True)
    (orphan_dir / "000000.png").write_bytes(b"")
    keep = [tmp_path / "checkpoints" / "last.ckpt", tmp_path / ".hidden_but_not_ours"]
    for k in keep:
        k.write_bytes(b"keep")
    assert sorted(remove_orphaned_temps(tmp_path)) == sorted([orphan_file, orphan_dir])
    assert all(k.exists() for k in keep) and not orphan_file.exists() and not orphan_dir.exists()


def _killed_run(tmp_path: Path, hook: str, **env: str) -> Path:
    """Train 3 steps (a checkpoint after each) in a child process that ``hook`` SIGKILLs while it saves at step 2."""
    args = [
        *SYNTH,
        "trainer.max_steps=3",
        "checkpoint.every_n_train_steps=1",
        "trainer.limit_val_batches=0",
        f"output_dir={tmp_path / 'runs'}",
        "name=kill",
    ]
    code = f"""
import io, os, signal, sys, torch
from kill_switch import die
{hook}
from itryon.cli.train import main
sys.exit(main({args!r}))
"""
    proc = run_child(code, **env)
    assert proc.returncode == -9, proc.stderr[-3000:]
    return only_run(tmp_path / "runs")


def _step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def _resume_and_finish(run: Path) -> None:
    assert train(["--resume", str(run)]) == 0
    assert _step(run / "checkpoints" / "last.ckpt") == 3
    assert not [p for p in run.rglob(f"*{TEMP_TAG}*")], "orphaned temporary files were not removed"


KILL_DURING_WRITE = """
real_save = torch.save
seen = []
def save(obj, f, *args, **kwargs):
    if os.path.basename(str(f)).startswith(".last.ckpt"):
        seen.append(f)
        if len(seen) == 2:  # the second last.ckpt (step 2): half the bytes reach the disk, then the kill
            buf = io.BytesIO()
            real_save(obj, buf)
            with open(f, "wb") as out:
                out.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                out.flush()
                os.fsync(out.fileno())
            die()
    return real_save(obj, f, *args, **kwargs)
torch.save = save
"""


@pytest.mark.skipif(not SHM.is_dir(), reason="needs a tmpfs at /dev/shm")
def test_a_kill_during_a_checkpoint_write_with_tmpdir_on_another_filesystem_keeps_the_last_checkpoint(tmp_path):
    tmpdir = Path(tempfile.mkdtemp(dir=SHM, prefix="itryon-test-"))
    try:
        assert os.stat(tmpdir).st_dev != os.stat(tmp_path).st_dev, "TMPDIR must be on another filesystem"
        run = _killed_run(tmp_path, KILL_DURING_WRITE, TMPDIR=str(tmpdir))
        ckpts = run / "checkpoints"
        assert _step(ckpts / "last.ckpt") == 1  # the previous last.ckpt, complete and loadable
        assert (ckpts / "last.ckpt").stat().st_size > 1000
        assert len(list(ckpts.glob(f".last.ckpt{TEMP_TAG}*"))) == 1  # the cut-short write, next to it
        assert not any(tmpdir.iterdir())  # nothing went through $TMPDIR
        _resume_and_finish(run)
    finally:
        for p in tmpdir.iterdir():
            p.unlink()
        tmpdir.rmdir()


KILL_AT_RENAME = """
real_replace = os.replace
def replace(src, dst, *args, **kwargs):
    if os.path.basename(str(dst)) == "epoch=0-step=2.ckpt":  # written in full and fsynced, not yet renamed
        die()
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
"""


def test_a_kill_at_the_rename_leaves_complete_checkpoints_and_resume_takes_the_newest(tmp_path):
    run = _killed_run(tmp_path, KILL_AT_RENAME)
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("*.ckpt")) == ["epoch=0-step=1.ckpt", "last.ckpt"]
    assert _step(ckpts / "last.ckpt") == 1
    (orphan,) = ckpts.glob(f".epoch=0-step=2.ckpt{TEMP_TAG}*")
    assert _step(orphan) == 2  # complete, but never a checkpoint: resume does not look at it
    from itryon.training.run import resume_target

    assert resume_target(run)[1].name == "last.ckpt"
    _resume_and_finish(run)
