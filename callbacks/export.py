"""Exports the trained weights as safetensors next to the Lightning checkpoints."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from safetensors.torch import save_file

from itryon.io_utils import atomic_path


class SafetensorsExport(L.Callback):
    """Writes ``weights/model.safetensors`` (the full module state, frozen VAE excluded by default) at the
    end of training and, with ``every_n_epochs``, after those epochs. Sharded (FSDP2) states are gathered
    to full tensors first.
    """

    def __init__(
        self,
        folder: str = "weights",
        filename: str = "model.safetensors",
        exclude_prefixes: list[str] | None = None,
        every_n_epochs: int = 0,
    ) -> None:
        self.folder = folder
        self.filename = filename
        self.exclude = tuple(exclude_prefixes if exclude_prefixes is not None else ["vae."])
        self.every_n_epochs = every_n_epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.export(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after every callback's on_train_end, so that weight averaging has put its average in place
        self.export(trainer, pl_module)

    def export(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path:
        state = full_state_dict(pl_module)
        path = Path(trainer.default_root_dir) / self.folder / self.filename
        if trainer.is_global_zero:
            tensors = {k: v.detach().cpu().contiguous() for k, v in state.items() if not k.startswith(self.exclude)}
            save_safetensors_atomic(tensors, path, metadata={"global_step": str(trainer.global_step)})
        return path


def full_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's state with sharded DTensors gathered (a collective: call on every rank)."""
    from torch.distributed.tensor import DTensor

    state = module.state_dict()
    if any(isinstance(v, DTensor) for v in state.values()):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return state


def save_safetensors_atomic(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share storage; clone those so every entry is its own buffer
    seen: set[int] = set()
    out = {}
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    with atomic_path(path) as tmp:
        save_file(out, str(tmp), metadata=metadata)
