"""Mapping between pixel frames and latent frames of a causal video VAE (Wan: 1 + 4k frames -> 1 + k latents)."""

from __future__ import annotations

import torch


def latent_frame_count(num_frames: int, temporal_compression: int) -> int:
    """Number of latent frames for ``num_frames`` pixel frames (``1 + (T - 1) // c``)."""
    if temporal_compression < 1:
        raise ValueError(f"temporal_compression must be >= 1, got {temporal_compression}")
    if temporal_compression > 1 and (num_frames - 1) % temporal_compression != 0:
        raise ValueError(
            f"a causal VAE with temporal compression {temporal_compression} needs 1 + {temporal_compression}k frames, "
            f"got {num_frames}"
        )
    return 1 + (num_frames - 1) // temporal_compression if temporal_compression > 1 else num_frames


def pixel_frame_count(latent_frames: int, temporal_compression: int) -> int:
    """Pixel frames of ``latent_frames`` latent frames (``1 + (F - 1) * c``), the inverse of :func:`latent_frame_count`."""
    if temporal_compression < 1:
        raise ValueError(f"temporal_compression must be >= 1, got {temporal_compression}")
    return 1 + (latent_frames - 1) * temporal_compression if temporal_compression > 1 else latent_frames


def latent_frame_index(num_frames: int, temporal_compression: int) -> torch.Tensor:
    """``[T]`` long: the latent frame each pixel frame falls in (frame 0 alone, then groups of ``c``)."""
    latent_frame_count(num_frames, temporal_compression)
    t = torch.arange(num_frames)
    if temporal_compression == 1:
        return t
    return torch.where(t == 0, torch.zeros_like(t), (t - 1) // temporal_compression + 1)


def frames_to_latent(weights: torch.Tensor, temporal_compression: int) -> torch.Tensor:
    """Pool per-frame values ``[..., T]`` to latent frames ``[..., F]`` with a max (any source frame counts)."""
    num_frames = weights.shape[-1]
    index = latent_frame_index(num_frames, temporal_compression).to(weights.device)
    count = int(index[-1]) + 1
    out = torch.full((*weights.shape[:-1], count), float("-inf"), dtype=weights.dtype, device=weights.device)
    out = out.scatter_reduce(-1, index.expand_as(weights), weights, reduce="amax", include_self=True)
    return out
