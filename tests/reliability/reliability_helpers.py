"""Shared pieces of the reliability tests: tiny training overrides, subprocess runs, manifest edits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PLUGINS = Path(__file__).resolve().parent / "plugins"
DISK = REPO / "configs" / "experiment" / "synthetic_disk.yaml"

# a few seconds per run: 5-frame clips, one sampling step, no sample videos or sampled-video metrics
TINY = [
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.batch_size=2",
    "model.sampler.num_steps=1",
    "model.warmup_steps=0",
    "checkpoint.every_n_train_steps=2",
    "callbacks.throughput.window=2",
    "callbacks.samples=null",
    "callbacks.metrics=null",
]
SYNTH = TINY + ["data.train.num_clips=8", "data.val.num_clips=2", "data.train.num_frames=5", "data.val.num_frames=5"]


def disk_overrides(manifest: Path, val: Path | None = None) -> list[str]:
    """Overrides of configs/experiment/synthetic_disk.yaml reading ``manifest`` (5-frame clips)."""
    val = val or manifest
    return TINY + [
        f"data.train.manifest={manifest}",
        f"data.val.manifest={val}",
        f"data.test.manifest={val}",
        "data.train.num_frames=5",
        "data.val.num_frames=5",
        "data.test.num_frames=5",
    ]


def only_run(root: Path) -> Path:
    runs = [p for p in root.glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess that imports this checkout (and the test plugins)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(PLUGINS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("ITRYON_TRUST_CONFIG", None)
    env.update(extra)
    return env


def run_child(code: str, timeout: int = 240, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=child_env(**env), capture_output=True, text=True, timeout=timeout
    )


_LOGGING_ERROR = re.compile(r"--- Logging error ---.*?\nArguments: [^\n]*\n", re.S)


def one_line_error(stderr: str) -> str:
    """The last line of stderr: the error, with no traceback before it.

    Reports that ``logging`` prints when pytest has closed a stream an earlier test's handler held are not
    the program's output and are left out.
    """
    stderr = _LOGGING_ERROR.sub("", stderr)
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    assert "Traceback" not in stderr, stderr
    assert "error" in lines[-1].lower(), lines[-1]
    return lines[-1]


def records(manifest: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]


def rewrite(manifest: Path, dst: Path, edit) -> Path:
    rs = records(manifest)
    edit(rs)
    dst.write_text("".join(json.dumps(r) + "\n" for r in rs))
    return dst
