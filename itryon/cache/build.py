"""Building a cache from a model and a dataset, and putting one to use for a training run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from itryon.data.contract import collate

from .keys import fingerprint
from .lookup import attach, cached_encode, detach
from .store import INDEX, CacheError, LatentCache, StaleCacheError, file_hash

log = logging.getLogger(__name__)
MODES = ("auto", "require", "rebuild", "off")
FLUSH_EVERY = 512  # entries per shard


def text_encoders(module: nn.Module) -> list[nn.Module]:
    """The distinct text encoders the conditioning adapters call (an action adapter shares the caption's)."""
    found: list[nn.Module] = []
    for adapter in getattr(getattr(module, "conditioning", None), "adapters", {}).values():
        encoder = (
            getattr(adapter, "text_encoder", None)
            if hasattr(type(adapter), "text_encoder")
            else getattr(adapter, "encoder", None)
        )
        if (
            "caption" in type(adapter).__name__.lower()
            and isinstance(encoder, nn.Module)
            and all(encoder is not e for e in found)
        ):
            found.append(encoder)
    return found


def dataset_signature(dataset: Dataset) -> str:
    """The manifest file's hash for manifest datasets, else a description of the dataset."""
    inner = getattr(dataset, "dataset", dataset)
    path = getattr(inner, "path", None)
    if path is not None and Path(path).is_file():
        return file_hash(Path(path))
    settings = {k: v for k, v in sorted(vars(inner).items()) if isinstance(v, (int, float, str, bool, tuple))}
    return f"{type(inner).__name__}{settings}"


def signature(module: nn.Module, dataset: Dataset) -> dict[str, str]:
    texts = text_encoders(module)
    return {
        "vae": fingerprint(module.vae),
        "text": "+".join(fingerprint(t) for t in texts),
        "manifest": dataset_signature(dataset),
    }


def default_folder(dataset: Dataset) -> Path | None:
    """``<manifest folder>/cache/<manifest stem>`` for a manifest dataset, else None."""
    path = getattr(getattr(dataset, "dataset", dataset), "path", None)
    return Path(path).parent / "cache" / Path(path).stem if path is not None else None


def _attach_all(module: nn.Module, cache: LatentCache, record: bool) -> None:
    attach(module.vae, cache, record=record, salt=cache.meta["vae"])
    for encoder in text_encoders(module):
        attach(encoder, cache, record=record)


def build_cache(module: nn.Module, dataset: Dataset, folder: str | Path, progress: bool = True) -> LatentCache:
    """Encode every clip of ``dataset`` as ``module`` would in training, without CFG dropout, plus each shape's null
    conditions; write the cache to ``folder`` (replacing one there)."""
    for encoder in text_encoders(module):
        if any(p.requires_grad for p in encoder.parameters()):
            raise CacheError(
                f"the text encoder {type(encoder).__name__} trains (its parameters require gradients): its embeddings change every step and cannot be cached"
            )
    folder = Path(folder)
    if (folder / INDEX).exists():
        (folder / INDEX).unlink()
        for shard in folder.glob("shard-*.safetensors"):
            shard.unlink()
    cache = LatentCache(folder, signature(module, dataset))
    was_training = module.training
    module.eval()
    _attach_all(module, cache, record=True)
    device = next(iter(module.parameters())).device
    try:
        with torch.no_grad():
            for i in tqdm(range(len(dataset)), desc="cache", unit="clip", disable=not progress):
                try:
                    sample = dataset[i]
                except Exception as exc:  # a clip that does not load is not cached (training skips it too)
                    log.warning("not caching clip %d: %s: %s", i, type(exc).__name__, exc)
                    continue
                batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in collate([sample]).items()}
                x0 = cached_encode(module.vae, batch["video"])
                for drop in (
                    None,
                    "all",
                ):  # the clip's conditions, then the null ones (the same for every clip of a shape)
                    module.conditioning(batch, vae=module.vae, latent_shape=tuple(x0.shape), drop=drop)
                if len(cache.pending) >= FLUSH_EVERY:
                    cache.flush()
        cache.flush()
    finally:
        detach(module.vae)
        for encoder in text_encoders(module):
            detach(encoder)
        module.train(was_training)
    return cache


def use_cache(
    module: nn.Module, dataset: Dataset, folder: str | Path | None, mode: str = "auto", rebuild_allowed: bool = True
) -> LatentCache | None:
    """Attach the cache in ``folder`` to ``module``'s encoders according to ``mode`` (``auto``: when present,
    ``require``: it must be, ``rebuild``: build it when absent or stale, ``off``); a stale one is refused."""
    if mode not in MODES:
        raise CacheError(f"data.cache must be one of {list(MODES)}, got {mode!r}")
    if mode == "off":
        return None
    folder = Path(folder) if folder is not None else default_folder(dataset)
    if folder is None:
        if mode == "auto":
            return None
        raise CacheError("this dataset has no manifest: give data.cache_dir for its cache")
    present = (folder / INDEX).is_file()
    if not present and mode == "auto":
        return None
    if not present and mode == "require":
        raise CacheError(
            f"data.cache=require but {folder} holds no cache; build it with `itryon cache --config CONFIG --split SPLIT`"
        )
    cache = LatentCache.open(folder) if present else None
    if cache is not None:
        try:
            cache.check(**signature(module, dataset))
        except StaleCacheError:
            if mode != "rebuild":
                raise
            cache = None
    if cache is None:
        if not rebuild_allowed:
            raise CacheError(f"{folder}: the cache must be rebuilt, which only the first process does")
        log.info("building the latent cache in %s", folder)
        cache = build_cache(module, dataset, folder)
    _attach_all(module, cache, record=False)
    log.info("latent cache %s: %d entries", folder, len(cache))
    return cache


def summary(cache: LatentCache | None) -> dict[str, Any]:
    return (
        {}
        if cache is None
        else {"folder": str(cache.folder), "entries": len(cache), "hits": cache.hits, "misses": cache.misses}
    )
