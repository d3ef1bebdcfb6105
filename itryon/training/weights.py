"""Putting trained weights (a run's safetensors or a Lightning checkpoint) into a TryOnModule."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from itryon.io_utils import UnreadableFileError, torch_load

log = logging.getLogger(__name__)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of ``weights/model.safetensors`` or of a Lightning ``.ckpt`` file (its ``state_dict``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path} (a run writes weights/model.safetensors)")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except Exception as exc:  # safetensors raises its own error types for a truncated or foreign file
            raise UnreadableFileError(
                f"{path}: not a readable safetensors file ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
            ) from None
    ckpt = torch_load(path, "Lightning checkpoint")
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise UnreadableFileError(
            f"{path}: not a Lightning checkpoint (no 'state_dict'); pass weights/model.safetensors or a run's .ckpt"
        )
    return ckpt["state_dict"]


def load_trained_weights(
    module: nn.Module, path: str | Path, *, allow_missing: bool = False, ignore: tuple[str, ...] = ("vae.",)
) -> list[str]:
    """Copy the tensors of ``path`` into ``module``; returns the module's parameters the file lacks.

    Every tensor of the file must exist in the module with the same shape (errors name it). Parameters the file
    lacks (e.g. adapters added for a second training stage) keep their initialisation when ``allow_missing``,
    and are an error otherwise. Keys starting with ``ignore`` (the frozen VAE) and the frozen tensors the module
    loaded from their own files (``module.frozen_sources()``, left out of exports) are never required.
    """
    state = read_weights(path)
    own = module.state_dict()
    unexpected = sorted(set(state) - set(own))
    if unexpected:
        raise ValueError(f"{path}: tensors not in the model: {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
    for key, value in state.items():
        if value.shape != own[key].shape:
            raise ValueError(
                f"{path}: tensor {key!r} has shape {tuple(value.shape)}, the model's is {tuple(own[key].shape)}"
            )
    sourced = set(module.frozen_sources()) if hasattr(module, "frozen_sources") else set()
    missing = sorted(k for k in set(own) - set(state) - sourced if not k.startswith(ignore))
    if missing and not allow_missing:
        raise ValueError(f"{path} lacks tensors of the model: {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    module.load_state_dict(state, strict=False)
    if missing:
        log.info("initialised from %s; %d tensors keep their fresh initialisation: %s", path, len(missing), missing)
    return missing
