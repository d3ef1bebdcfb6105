"""Degenerate "generations" built from a batch, to check that a judge cannot be gamed.

Each is a video ``(B, 3, T, H, W)`` in [-1, 1] that a sound interaction judge must reject (or, for
``ground_truth`` and ``ground_truth_noise``, accept); ``benchmarks/judge_degenerate.py`` tabulates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

NOISE_SIGMA = 10.0 / 255.0  # on the [0, 1] scale; 2x that on [-1, 1]
SHIFTS = (4, -4, 8, -8)  # frames; positive: the generation lags the real video
ACCEPTED = ("ground_truth", "ground_truth_noise")


def shift_in_time(video: torch.Tensor, frames: int) -> torch.Tensor:
    """``video`` ``(B, 3, T, H, W)`` delayed by ``frames`` (advanced if negative), the edge frame repeated."""
    t = video.shape[2]
    index = (torch.arange(t, device=video.device) - frames).clamp(0, t - 1)  # (T,)
    return video[:, :, index]


def degenerate_outputs(batch: Mapping[str, Any], seed: int = 0) -> dict[str, torch.Tensor]:
    """Name -> video for the batch's ``video``, ``counterfactual`` and ``agnostic`` ``(B, 3, T, H, W)``."""
    for key in ("video", "counterfactual", "agnostic"):
        if key not in batch:
            raise KeyError(f"degenerate_outputs needs the batch key {key!r}; the batch has {sorted(batch)}")
    real, cf = batch["video"].float(), batch["counterfactual"].float()
    g = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(real.shape, generator=g).to(real.device)  # (B, 3, T, H, W)
    out = {
        "ground_truth": real,
        "ground_truth_noise": (real + 2.0 * NOISE_SIGMA * noise).clamp(-1, 1),
        "counterfactual": cf,
        "black": torch.full_like(real, -1.0),
        "white": torch.full_like(real, 1.0),
        "grey": torch.zeros_like(real),
        "mean_colour": real.mean(dim=(2, 3, 4), keepdim=True).expand_as(real),
        "noise": torch.randn(real.shape, generator=g).to(real.device).clamp(-1, 1),
        "mean_frame": real.mean(dim=2, keepdim=True).expand_as(real),
        "agnostic": batch["agnostic"].float(),
        "first_frame": real[:, :, :1].expand_as(real),
        "blend": 0.5 * (real + cf),
    }
    for s in SHIFTS:
        out[f"shift_{s:+d}"] = shift_in_time(real, s)
    return out
