"""Content hashes: of one input tensor, of one text, and of an encoder (class, settings, every tensor it holds)."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

SETTING_TYPES = (bool, int, float, str, tuple)


def _digest() -> hashlib._Hash:
    return hashlib.blake2b(digest_size=16)


def tensor_key(x: torch.Tensor, salt: str = "") -> str:
    """Hash of a tensor's dtype, shape and values (on the CPU), under ``salt`` (the encoder's fingerprint)."""
    h = _digest()
    h.update(f"{salt}|{x.dtype}|{tuple(x.shape)}|".encode())
    h.update(x.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes() if x.numel() else b"")
    return h.hexdigest()


def text_key(text: str, salt: str = "") -> str:
    h = _digest()
    h.update(f"{salt}|".encode())
    h.update(text.encode("utf-8"))
    return h.hexdigest()


def fingerprint(module: nn.Module) -> str:
    """Hash of ``module``'s class, its plain settings (public int/float/str/bool/tuple attributes of it and its
    submodules) and all its parameters and buffers, persistent or not: equal fingerprints encode equally."""
    h = _digest()
    for name, sub in module.named_modules():
        h.update(f"{name}:{type(sub).__module__}.{type(sub).__qualname__}|".encode())
        settings = {
            k: v
            for k, v in vars(sub).items()
            if not k.startswith("_") and isinstance(v, SETTING_TYPES) and k != "training"
        }
        h.update(repr(sorted(settings.items())).encode())
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(
            tensor.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().tobytes()
            if tensor.numel()
            else b""
        )
    return h.hexdigest()
