"""Pipeline components that save and load as diffusers models: an itryon module described by its config entry.

diffusers saves a component with ``save_pretrained`` and loads it with ``from_pretrained`` of its class
(``ModelMixin`` + ``ConfigMixin``); the itryon parts are plain ``nn.Module``\\ s built from ``_target_`` entries, so
each component class holds one part built from its entry (``config.json``: ``{"target": {...}}``) and its weights
(``diffusion_pytorch_model.safetensors``). The entry is built under the run-config rule (itryon's
:mod:`~itryon.config.targets`: only classes of itryon and the libraries it builds on), so that loading a folder
never runs code it brings.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import save_file
from torch import nn

from itryon.config import ConfigError, instantiate

TEXT_ENCODER_SEAT = {"_target_": "torch.nn.Identity"}  # an adapter's encoder entry filled by the pipeline


class ConfiguredModule(ModelMixin, ConfigMixin):
    """One itryon part (``self.module``) built from its ``_target_`` entry ``target``."""

    config_name = "config.json"
    part = "module"

    @register_to_config
    def __init__(self, target: Mapping[str, Any], key_order: Mapping[str, list[str]] | None = None) -> None:
        super().__init__()
        if not isinstance(target, Mapping) or "_target_" not in target:
            raise ConfigError(f"{type(self).__name__} config 'target' must be a _target_ entry, got {target!r}")
        # config.json sorts keys; the order of a stack's adapters is the order of its inputs, so it is kept aside
        built = instantiate(ordered(target, key_order or {}), f"{self.part}.target")
        if not isinstance(built, nn.Module):
            raise ConfigError(f"{self.part}: {target['_target_']} built a {type(built).__name__}, not an nn.Module")
        self.module = built

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> ConfiguredModule:
        kwargs.setdefault("use_safetensors", True)
        kwargs.setdefault("low_cpu_mem_usage", False)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        super().save_pretrained(save_directory, **kwargs)
        weights = Path(save_directory) / SAFETENSORS_WEIGHTS_NAME
        if not weights.exists():  # diffusers writes no file for a part without tensors; from_pretrained wants one
            save_file({}, str(weights))

    @property
    def device(self) -> torch.device:
        # ModelMixin reads its first parameter; a parameter-free part (PixelVAE) has none
        tensor = next(itertools.chain(self.parameters(), self.buffers()), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        tensor = next(itertools.chain(self.parameters(), self.buffers()), None)
        return tensor.dtype if tensor is not None else torch.float32

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)


def key_orders(node: Any, path: str = "") -> dict[str, list[str]]:
    """The key order of every mapping in ``node``, by dotted path (what :func:`ordered` restores)."""
    if not isinstance(node, Mapping):
        return {}
    orders = {path: [str(k) for k in node]}
    for key, value in node.items():
        orders.update(key_orders(value, f"{path}.{key}" if path else str(key)))
    return orders


def ordered(node: Any, orders: Mapping[str, list[str]], path: str = "") -> Any:
    """``node`` with its mappings' keys in the order ``orders`` records (keys it does not list keep their place)."""
    if not isinstance(node, Mapping):
        return node
    order = list(orders.get(path, []))
    keys = [k for k in order if k in node] + [k for k in node if k not in order]
    return {k: ordered(node[k], orders, f"{path}.{k}" if path else str(k)) for k in keys}


class ITryOnTransformer(ConfiguredModule):
    """The denoising backbone (a :class:`~itryon.models.backbone.Backbone`)."""

    part = "transformer"


class ITryOnVAE(ConfiguredModule):
    """The video autoencoder (``encode``/``decode``, ``spatial_compression``, ``temporal_compression``)."""

    part = "vae"


class ITryOnTextEncoder(ConfiguredModule):
    """The text encoder of the caption adapters (``texts -> (embeddings, mask)``)."""

    part = "text_encoder"


class ITryOnConditioning(ConfiguredModule):
    """The conditioning stack with its adapters; the text encoder is the pipeline's ``text_encoder``, which takes the
    seat of an adapter's ``encoder`` entry :data:`TEXT_ENCODER_SEAT` (and is saved with the ``text_encoder``)."""

    part = "conditioning"

    @property
    def text_seats(self) -> list[str]:
        """Adapters whose encoder is the pipeline's ``text_encoder``."""
        adapters = self.config.target.get("adapters") or {}
        return [n for n, a in adapters.items() if isinstance(a, Mapping) and a.get("encoder") == TEXT_ENCODER_SEAT]

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        state = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        seats = tuple(f"{prefix}module.adapters.{name}.encoder." for name in self.text_seats)
        return {k: v for k, v in state.items() if not k.startswith(seats)} if seats else state
