"""The Wan2.1 DiT's timestep embedding and its adaLN output head."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_sinusoid(timestep: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """``(B,)`` -> ``(B, dim)`` float32 ``[cos, sin]`` embedding with frequencies ``max_period ** (-i / (dim/2))``."""
    if dim % 2 != 0:
        raise ValueError(f"freq_dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timestep.device) / half)
    angles = timestep.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class WanHead(nn.Module):
    """Output head: adaLN (shift/scale from the time embedding) then a linear projection to patch values."""

    def __init__(self, dim: int, out_features: int, eps: float = 1e-6):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.proj = nn.Linear(dim, out_features)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.modulation + time_embedding.float().unsqueeze(1)).chunk(2, dim=1)  # (B, 1, dim) each
        h = (F.layer_norm(x.float(), (self.dim,), eps=self.eps) * (1 + scale) + shift).to(x.dtype)
        return self.proj(h)
