"""Where the encoders consult a cache: ``encode_video`` (``itryon.conditioning.base``), the module's target
latents and the caption adapters call :func:`cached_encode` / :func:`cached_text` instead of the encoder itself.

Without a cache attached they are exactly the encoder's call. With one, each sample's input is looked up by its
content hash (under the encoder's fingerprint); misses run through the encoder in one call and, while recording
(``itryon cache``), are added to the cache. A text encoder that trains is never served from a cache.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from .keys import fingerprint, tensor_key, text_key
from .store import LatentCache


@dataclass
class _Attached:
    cache: LatentCache
    salt: str  # the encoder's fingerprint
    record: bool


_ATTACHED: weakref.WeakKeyDictionary[nn.Module, _Attached] = weakref.WeakKeyDictionary()


def attach(encoder: nn.Module, cache: LatentCache, record: bool = False, salt: str | None = None) -> None:
    """Serve ``encoder``'s outputs from ``cache`` (``record``: also add what it computes)."""
    _ATTACHED[encoder] = _Attached(cache, salt if salt is not None else fingerprint(encoder), record)


def detach(encoder: nn.Module) -> None:
    _ATTACHED.pop(encoder, None)


def attached(encoder: nn.Module) -> LatentCache | None:
    entry = _ATTACHED.get(encoder)
    return entry.cache if entry is not None else None


@torch.no_grad()
def cached_encode(vae: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """``vae.encode(video)`` for ``video`` ``(B, ...)``, sample by sample from the attached cache where it can."""
    entry = _ATTACHED.get(vae)
    if entry is None:
        return vae.encode(video)
    keys = [tensor_key(v, entry.salt) for v in video]
    found = [entry.cache.latent(k) for k in keys]
    missing = [i for i, f in enumerate(found) if f is None]
    entry.cache.hits += len(keys) - len(missing)
    entry.cache.misses += len(missing)
    if missing:
        computed = vae.encode(video[missing])
        for j, i in enumerate(missing):
            found[i] = computed[j]
            if entry.record:
                entry.cache.add_latent(keys[i], computed[j])
        dtype = computed.dtype
    else:
        dtype = found[0].dtype
    return torch.stack([f.to(device=video.device, dtype=dtype) for f in found])


def cached_text(encoder: nn.Module, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``encoder(texts)`` (embeddings ``(B, L, D)``, mask ``(B, L)``), text by text from the attached cache."""
    entry = _ATTACHED.get(encoder)
    if entry is None or any(p.requires_grad for p in encoder.parameters()):
        return encoder(texts)
    keys = [text_key(t, entry.salt) for t in texts]
    found = [entry.cache.text(k) for k in keys]
    missing = [i for i, f in enumerate(found) if f is None]
    entry.cache.hits += len(keys) - len(missing)
    entry.cache.misses += len(missing)
    if missing:
        with torch.no_grad():
            emb, mask = encoder([texts[i] for i in missing])
        for j, i in enumerate(missing):
            found[i] = (emb[j], mask[j])
            if entry.record:
                entry.cache.add_text(keys[i], emb[j], mask[j])
    device = next(iter(encoder.parameters()), torch.empty(0)).device
    return torch.stack([e.to(device) for e, _ in found]), torch.stack([m.to(device) for _, m in found])
