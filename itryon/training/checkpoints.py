"""Checkpoints that survive a kill on any filesystem, and choosing (and checking) the one a run resumes from."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import nn

from itryon.io_utils import UnreadableFileError, atomic_path, is_temp_name, torch_load

log = logging.getLogger(__name__)
CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"


class CheckpointError(ValueError):
    """A checkpoint cannot be resumed from; the message names the file and, for shapes, the tensor."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint IO, writing through :func:`itryon.io_utils.atomic_path`.

    Lightning's own IO stages the file in ``$TMPDIR`` and moves it; when ``$TMPDIR`` is another filesystem the
    move is a truncate-and-copy of the target, and a kill during it leaves a 0-byte ``last.ckpt``. Here the
    temporary file sits next to the target, is fsynced, and is renamed over it. Loads are weights-only, and a
    0-byte, truncated or foreign file is a one-line :class:`CheckpointError` naming it.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(
        self, path: Any, map_location: Callable | Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        try:
            return torch_load(
                path,
                "Lightning checkpoint",
                map_location=map_location or "cpu",
                weights_only=True if weights_only is None else weights_only,
            )
        except UnreadableFileError as exc:
            raise CheckpointError(str(exc)) from None


def inspect_checkpoint(path: Path) -> tuple[int, str | None]:
    """``(global_step, problem)``: ``problem`` is None for a complete Lightning checkpoint of a training run.

    Reads the file memory-mapped, so that tensors are not loaded. A sharded (distributed) checkpoint folder is
    complete when its ``.metadata`` file exists; its step comes from its name (``last.ckpt`` counts as newest).
    """
    if path.is_dir():
        if not (path / ".metadata").is_file():
            return -1, "sharded checkpoint folder without its .metadata file (cut short)"
        found = re.search(r"step=(\d+)", path.name)
        return (int(found.group(1)) if found else 1 << 62), None
    try:
        ckpt = torch_load(path, "Lightning checkpoint", mmap=True)
    except UnreadableFileError as exc:
        return -1, str(exc).removeprefix(f"{path}: ")
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "global_step" not in ckpt:
        found = sorted(ckpt)[:5] if isinstance(ckpt, dict) else type(ckpt).__name__
        return (
            -1,
            f"not a Lightning checkpoint of a training run (it has no 'state_dict' and 'global_step'; found {found})",
        )
    return int(ckpt["global_step"]), None


def resume_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """``(run_dir, checkpoint)`` for ``--resume``: a checkpoint file (or sharded folder), or a run folder, whose
    newest complete checkpoint is taken (incomplete ones are skipped with a warning naming them)."""
    p = Path(path)
    if p.suffix == ".ckpt":
        run_dir = p.parent.parent if p.parent.name == CHECKPOINT_DIR else p.parent
        if not p.exists():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {p}")
        _, problem = inspect_checkpoint(p)
        if problem:
            raise CheckpointError(f"cannot resume from {p}: {problem}")
        return run_dir, p
    folder = p / CHECKPOINT_DIR
    candidates = [c for c in folder.glob("*.ckpt") if not is_temp_name(c.name)] if folder.is_dir() else []
    if not candidates:
        raise FileNotFoundError(f"cannot resume: no checkpoint in {folder}")
    ranked, rejected = [], []
    for c in candidates:
        step, problem = inspect_checkpoint(c)
        if problem:
            rejected.append(f"{c.name}: {problem}")
        else:
            ranked.append((step, c.name == LAST, c.stat().st_mtime, c))
    if not ranked:
        raise CheckpointError(f"cannot resume {p}: no complete checkpoint in {folder} ({'; '.join(sorted(rejected))})")
    for line in sorted(rejected):
        log.warning("resume: skipping %s", line)
    return p, max(ranked, key=lambda r: r[:3])[3]


def check_resumable(ckpt_path: Path, module: nn.Module, built_from: str) -> None:
    """Raise :class:`CheckpointError` naming the first tensor whose name or shape differs between the checkpoint
    and ``module`` (e.g. an override that changes a width): resuming cannot change the model."""
    if ckpt_path.is_dir():
        return  # sharded: checked by the distributed loader
    state = torch_load(ckpt_path, "Lightning checkpoint", mmap=True)["state_dict"]
    own = module.state_dict()
    advice = "a resumed run keeps the model it was trained with; start a new run (model.init_from=... starts from these weights)"
    for key, value in state.items():
        if key in own and tuple(value.shape) != tuple(own[key].shape):
            raise CheckpointError(
                f"cannot resume from {ckpt_path}: tensor '{key}' has shape {tuple(value.shape)} in the checkpoint but "
                f"{tuple(own[key].shape)} in the model built from {built_from}; {advice}"
            )
    sourced = set(module.frozen_sources()) if hasattr(module, "frozen_sources") else set()  # left out on purpose
    missing, unexpected = sorted(set(own) - set(state) - sourced), sorted(set(state) - set(own))
    if missing:
        raise CheckpointError(
            f"cannot resume from {ckpt_path}: the model built from {built_from} has tensor '{missing[0]}' ({len(missing)} in all) that the checkpoint lacks; {advice}"
        )
    if unexpected:
        raise CheckpointError(
            f"cannot resume from {ckpt_path}: the checkpoint has tensor '{unexpected[0]}' ({len(unexpected)} in all) that the model built from {built_from} lacks; {advice}"
        )
