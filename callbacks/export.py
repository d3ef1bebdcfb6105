"""Exports the trained weights as safetensors next to the Lightning checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch
from safetensors.torch import save_file

from itryon.io_utils import atomic_path, write_text
from itryon.models.lora import has_lora, lora_state_dict, merged_state_dict
from itryon.training.freezing import summarise_sources


class SafetensorsExport(L.Callback):
    """Writes ``weights/model.safetensors`` (the module state without the VAE and without the frozen tensors loaded
    from files) at the end of training and, with ``every_n_epochs``, after those epochs. Sharded (FSDP2) states are
    gathered to full tensors first.

    The frozen tensors left out are listed, with the file each comes from, in ``weights/sources.json`` and in the
    safetensors metadata (``frozen_sources``). A module with LoRA also gets ``weights/lora.safetensors`` (the
    backbone's LoRA tensors alone, peft's names) and, with ``merged``, ``weights/merged.safetensors``: the whole
    module with LoRA merged into the base weights (frozen base weights included), loadable without LoRA.
    """

    def __init__(
        self,
        folder: str = "weights",
        filename: str = "model.safetensors",
        exclude_prefixes: list[str] | None = None,
        every_n_epochs: int = 0,
        merged: bool = False,
    ) -> None:
        self.folder = folder
        self.filename = filename
        self.exclude = tuple(exclude_prefixes if exclude_prefixes is not None else ["vae."])
        self.every_n_epochs = every_n_epochs
        self.merged = merged

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.export(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after every callback's on_train_end, so that weight averaging has put its average in place
        self.export(trainer, pl_module)

    def export(self, trainer: L.Trainer, pl_module: L.LightningModule) -> Path:
        state = full_state_dict(pl_module)
        folder = Path(trainer.default_root_dir) / self.folder
        path = folder / self.filename
        sources = pl_module.frozen_sources() if hasattr(pl_module, "frozen_sources") else {}
        backbone = getattr(pl_module, "backbone", None)
        lora = backbone is not None and has_lora(backbone)
        if not trainer.is_global_zero:
            return path
        listing = json.dumps(summarise_sources(sources), indent=2)
        metadata = {"global_step": str(trainer.global_step), "frozen_sources": listing}
        tensors = {
            k: v.detach().cpu().contiguous()
            for k, v in state.items()
            if not k.startswith(self.exclude) and k not in sources
        }
        save_safetensors_atomic(tensors, path, metadata=metadata)
        write_text(folder / "sources.json", listing + "\n")
        if lora:
            own = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
            lora_tensors = {k: v.detach().cpu().contiguous() for k, v in lora_state_dict(backbone, own).items()}
            save_safetensors_atomic(lora_tensors, folder / "lora.safetensors", metadata=metadata)
        if lora and self.merged:
            merged = merged_state_dict(pl_module, {k: v.detach().cpu() for k, v in state.items()})
            merged = {k: v.contiguous() for k, v in merged.items() if not k.startswith(self.exclude)}
            save_safetensors_atomic(
                merged, folder / "merged.safetensors", metadata={"global_step": metadata["global_step"]}
            )
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
