"""Caches of the frozen encoders' outputs: VAE latents of the video conditions and text embeddings of the captions.

``itryon cache`` runs the model's encoders over every clip of a split and writes safetensors shards keyed by a
hash of each input and of the encoder (its class, settings and weights); while training, the data module attaches
the cache to the model's encoders and :func:`.lookup.cached_encode` / :func:`.lookup.cached_text` serve what it
holds instead of running the VAE and the text encoder (docs/preprocessing.md).
"""

from .lookup import attach, cached_encode, cached_text, detach
from .store import CacheError, LatentCache, StaleCacheError

__all__ = ["CacheError", "LatentCache", "StaleCacheError", "attach", "cached_encode", "cached_text", "detach"]
