"""A depth-map conditioning adapter added through config only (the extension example of docs/conditioning.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from itryon.conditioning.base import (
    AdapterOutput,
    ConditionEnv,
    ConditioningAdapter,
    check_token_grid,
    where_keep,
    zero_linear,
)
from itryon.conditioning.video_encoder import CausalVideoEncoder


class DepthAdapter(ConditioningAdapter):
    """Reads ``depth`` ``(B, 1, T, H, W)`` into a zero-initialised token residual ``(B, N, dim)``."""

    def __init__(
        self,
        dim: int,
        patch_size: Sequence[int] = (1, 2, 2),
        spatial_compression: int = 8,
        temporal_compression: int = 4,
        hidden_dim: int = 64,
        drop_prob: float = 0.0,
    ) -> None:
        super().__init__(("depth",), "residual", trainable=True, drop_prob=drop_prob)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.encoder = CausalVideoEncoder(1, hidden_dim, spatial_compression, temporal_compression, self.patch_size)
        self.proj = zero_linear(hidden_dim, dim)

    def forward(self, batch: Mapping[str, Any], env: ConditionEnv, keep: torch.Tensor) -> AdapterOutput:
        features = self.encoder(batch["depth"].to(self.proj.weight.dtype))  # (B, hidden, F', H', W')
        check_token_grid(features.shape[2:], env, self.patch_size, "DepthAdapter")
        residual = self.proj(F.silu(features.flatten(2).transpose(1, 2)))  # (B, N, dim)
        return AdapterOutput("residual", where_keep(residual, keep, 0.0))
