"""The rendered pose video: into the VACE context beside the person, or a token residual via a small 3D-conv encoder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from itryon.conditioning.base import (
    AdapterOutput,
    ConditionEnv,
    ConditioningAdapter,
    check_token_grid,
    encode_video,
    where_keep,
    zero_linear,
)
from itryon.conditioning.video_encoder import CausalVideoEncoder


class PoseAdapter(ConditioningAdapter):
    """Reads ``pose`` ``(B, 3, T, H, W)``.

    * ``mode="vace"``: ``E(pose)``, ``latent_channels`` more channels of the VACE context (after the person's).
    * ``mode="residual"``: a :class:`CausalVideoEncoder` then a zero-initialised linear to the backbone width,
      added to the patch-embedded video tokens.

    Null condition: a grey (zero) pose video in VACE mode, an exact zero residual in residual mode.
    """

    def __init__(
        self,
        mode: Literal["vace", "residual"] = "vace",
        latent_channels: int = 16,
        dim: int = 1536,
        patch_size: Sequence[int] = (1, 2, 2),
        spatial_compression: int = 8,
        temporal_compression: int = 4,
        hidden_dim: int = 128,
        drop_prob: float = 0.0,
    ) -> None:
        if mode not in ("vace", "residual"):
            raise ValueError(f"PoseAdapter mode must be 'vace' or 'residual', got {mode!r}")
        super().__init__(("pose",), mode, trainable=mode == "residual", drop_prob=drop_prob)
        self.mode = mode
        self.patch_size = tuple(int(p) for p in patch_size)
        self.encoder: CausalVideoEncoder | None = None
        self.proj: nn.Linear | None = None
        if mode == "vace":
            self.out_channels = latent_channels
        else:
            self.encoder = CausalVideoEncoder(3, hidden_dim, spatial_compression, temporal_compression, self.patch_size)
            self.proj = zero_linear(hidden_dim, dim)

    def forward(self, batch: Mapping[str, Any], env: ConditionEnv, keep: torch.Tensor) -> AdapterOutput:
        pose = batch["pose"]  # (B, 3, T, H, W)
        if self.mode == "vace":
            return AdapterOutput("vace", encode_video(env.vae, where_keep(pose, keep, 0.0)))
        features = self.encoder(pose.to(self.proj.weight.dtype))  # (B, hidden, F', H', W')
        check_token_grid(features.shape[2:], env, self.patch_size, "PoseAdapter")
        residual = self.proj(nn.functional.silu(features.flatten(2).transpose(1, 2)))  # (B, N, dim)
        return AdapterOutput("residual", where_keep(residual, keep, 0.0))
