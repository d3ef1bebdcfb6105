"""LoRA on a backbone through peft: injection, the LoRA tensors alone, and the merged weights.

``add_lora`` injects peft LoRA layers into the backbone's ``nn.Linear`` modules named by ``LoraConfig.target_modules``
(peft matches name suffixes: ``q``, ``k``, ``v``, ``o``, ``ffn.0``, ``ffn.2`` on a WanDiT; ``to_q``, ...,
``ffn.net.0.proj`` on diffusers' model). peft initialises ``lora_B`` to zero, so the backbone's output is unchanged
until training moves it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

ADAPTER = "default"


def add_lora(backbone: nn.Module, config) -> nn.Module:
    """Inject the LoRA layers of ``config`` (a ``peft.LoraConfig``) into ``backbone`` in place and return it; the
    other parameters keep their ``requires_grad`` (freezing them is :func:`itryon.training.freezing.select_trainable`'s
    job)."""
    from peft import inject_adapter_in_model

    if getattr(config, "use_dora", False):
        raise ValueError("model.lora.use_dora: DoRA is not supported here (its merge differs); use plain LoRA")
    trainable = {id(p): p.requires_grad for p in backbone.parameters()}
    try:
        inject_adapter_in_model(config, backbone, adapter_name=ADAPTER)
    except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
        names = sorted({_suffix(name) for name, m in backbone.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(
            f"model.lora.target_modules={sorted(config.target_modules)}: {exc}; the backbone's linear layers end in "
            f"{names}"
        ) from None
    for param in backbone.parameters():  # peft freezes the rest; which of it trains is the caller's choice
        if id(param) in trainable:
            param.requires_grad_(trainable[id(param)])
    return backbone


def _suffix(name: str) -> str:
    """``blocks.0.self_attn.q`` -> ``q``; ``blocks.0.ffn.2`` -> ``ffn.2`` (the names peft's suffix matching takes)."""
    parts = name.split(".")
    return ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]


def lora_layers(module: nn.Module) -> dict[str, nn.Module]:
    """Module name -> peft LoRA layer, for every LoRA layer under ``module``."""
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in module.named_modules() if isinstance(m, LoraLayer)}


def has_lora(module: nn.Module) -> bool:
    return bool(lora_layers(module))


def is_lora_parameter(name: str) -> bool:
    return ".lora_" in name or name.startswith("lora_")


def after_lora(keys: Iterable[str], module: nn.Module, prefix: str = "") -> dict[str, str]:
    """Name before LoRA -> name after, for ``keys`` of the module that holds ``module`` under ``prefix``: the weight
    and bias of a LoRA layer move to its ``base_layer``."""
    moved = {}
    for name in lora_layers(module):
        for tensor in ("weight", "bias"):
            moved[f"{prefix}{name}.{tensor}"] = f"{prefix}{name}.base_layer.{tensor}"
    return {k: moved.get(k, k) for k in keys}


def lora_state_dict(backbone: nn.Module, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The LoRA tensors alone, in peft's naming (``...q.lora_A.weight``), as ``peft.get_peft_model_state_dict``
    gives them for ``load_lora_weights``-style loaders; from ``state`` (the backbone's full state, e.g. gathered
    from shards) when given."""
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(backbone, state_dict=state, adapter_name=ADAPTER)


@torch.no_grad()
def merged_state_dict(module: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` (``module``'s full state, e.g. gathered from shards) with every LoRA layer merged into its base
    weight and the LoRA tensors removed: the names of the module without LoRA.

    Merged here from the state dict rather than with peft's in-place ``merge_and_unload``, which needs the unsharded
    modules; the arithmetic is peft's for a linear layer, ``W + (B @ A) * scaling``.
    """
    merged = dict(state)
    for name, layer in lora_layers(module).items():
        prefix = f"{name}." if name else ""
        base = merged.pop(f"{prefix}base_layer.weight")
        a = merged.pop(f"{prefix}lora_A.{ADAPTER}.weight").float()
        b = merged.pop(f"{prefix}lora_B.{ADAPTER}.weight").float()
        merged[f"{prefix}weight"] = (base.float() + (b @ a) * float(layer.scaling[ADAPTER])).to(base.dtype)
        if f"{prefix}base_layer.bias" in merged:
            merged[f"{prefix}bias"] = merged.pop(f"{prefix}base_layer.bias")
    leftover = [k for k in merged if is_lora_parameter(k) or ".base_layer." in k]
    if leftover:
        raise ValueError(f"LoRA tensors left after merging (not plain linear LoRA layers): {leftover[:5]}")
    return merged
