"""A cache folder: ``index.json`` (what was encoded by which encoders, for which manifest) and safetensors shards."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from itryon.io_utils import atomic_path, write_text

INDEX = "index.json"
VERSION = 1


class CacheError(RuntimeError):
    """A cache folder cannot be read or does not match what it is used for."""


class StaleCacheError(CacheError):
    """The cache was built by other encoders or for another manifest than the run's."""


def file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class LatentCache:
    """Entries ``latent/<key>`` (a latent) and ``text/<key>`` (an embedding and its mask) over shards; ``pending``
    holds entries added since the last :meth:`flush`."""

    def __init__(self, folder: str | Path, meta: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.meta = dict(meta or {})  # vae, text (fingerprints), manifest (hash), config
        self.where: dict[str, str] = {}  # entry name -> shard file
        self.pending: dict[str, torch.Tensor] = {}
        self._open: dict[str, Any] = {}
        self.hits = self.misses = 0

    # -- reading
    @classmethod
    def open(cls, folder: str | Path) -> LatentCache:
        folder = Path(folder)
        path = folder / INDEX
        if not path.is_file():
            raise CacheError(
                f"{folder} holds no cache ({INDEX} is missing); build it with `itryon cache --config ... --split ...`"
            )
        try:
            index = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CacheError(
                f"{path}: not valid JSON ({exc.msg}); rebuild the cache with `itryon cache ... --rebuild`"
            ) from exc
        if index.get("version") != VERSION:
            raise CacheError(
                f"{path}: cache format version {index.get('version')!r}, this itryon reads {VERSION}; rebuild it with --rebuild"
            )
        cache = cls(folder, index["meta"])
        cache.where = dict(index["entries"])
        return cache

    def check(self, **expected: str) -> None:
        """Raise :class:`StaleCacheError` naming each of ``vae``, ``text``, ``manifest`` that differs from ``expected``."""
        stale = [
            f"{k} (cache {str(self.meta.get(k))[:12]}, now {str(v)[:12]})"
            for k, v in expected.items()
            if self.meta.get(k) != v
        ]
        if stale:
            what = {
                "vae": "the VAE's config or weights changed",
                "text": "the text encoder's config or weights changed",
                "manifest": "the manifest changed",
            }
            reasons = "; ".join(what.get(s.split(" ")[0], s) for s in stale)
            raise StaleCacheError(
                f"the cache in {self.folder} is stale: {reasons} [{', '.join(stale)}]. Rebuild it with `itryon cache --config CONFIG "
                f"--split SPLIT --rebuild`, let training rebuild it (data.cache=rebuild), or train without it (data.cache=off)"
            )

    def _tensor(self, name: str) -> torch.Tensor | None:
        if name in self.pending:
            return self.pending[name]
        shard = self.where.get(name)
        if shard is None:
            return None
        if shard not in self._open:
            self._open[shard] = safe_open(str(self.folder / shard), framework="pt")
        return self._open[shard].get_tensor(name)

    def latent(self, key: str) -> torch.Tensor | None:
        return self._tensor(f"latent/{key}")

    def text(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        emb = self._tensor(f"text/{key}/emb")
        if emb is None:
            return None
        mask = self._tensor(f"text/{key}/mask").bool()
        full = emb.new_zeros(mask.shape[0], emb.shape[-1])  # stored without the zero padding
        full[: emb.shape[0]] = emb
        return full, mask

    def __contains__(self, name: str) -> bool:
        return name in self.where or name in self.pending

    def __len__(self) -> int:
        return len(set(self.where) | set(self.pending))

    # -- writing
    def add_latent(self, key: str, value: torch.Tensor) -> None:
        self.pending[f"latent/{key}"] = value.detach().cpu().contiguous()

    def add_text(self, key: str, emb: torch.Tensor, mask: torch.Tensor) -> None:
        """An embedding ``(L, D)`` and its mask ``(L,)``; the rows after the last real token must be zero (the text
        encoders' padding) and are not stored."""
        length = int(torch.nonzero(mask).max()) + 1 if bool(mask.any()) else 0
        if bool(emb[length:].any()):
            raise ValueError("cannot cache a text embedding whose padding rows are not zero")
        self.pending[f"text/{key}/emb"] = emb[:length].detach().cpu().contiguous()
        self.pending[f"text/{key}/mask"] = mask.detach().cpu().to(torch.uint8).contiguous()

    def flush(self) -> None:
        """Write the pending entries as one new shard, then the index (a reader sees whole shards only)."""
        if self.pending:
            name = f"shard-{len(set(self.where.values())):05d}.safetensors"
            with atomic_path(self.folder / name, suffix=".safetensors") as tmp:
                save_file(self.pending, str(tmp))
            self.where.update({k: name for k in self.pending})
            self.pending = {}
        write_text(
            self.folder / INDEX,
            json.dumps({"version": VERSION, "meta": self.meta, "entries": self.where}, sort_keys=True),
        )
