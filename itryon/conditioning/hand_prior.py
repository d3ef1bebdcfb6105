"""Spatial interaction guidance: the Interaction Guider over garment-agnostic 3D hand renders (iTryOn).

The hand prior tells a hand *touching* the garment from one *hovering* in front of it (depth, grip), which a 2D
pose cannot. The guider encodes the renders with a causal 3D-conv stack to the DiT token grid, mixes the tokens
with self-attention (a depthwise 3D conv gives positions), and adds a zero-initialised projection to the DiT tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from itryon.conditioning.base import AdapterOutput, ConditionEnv, ConditioningAdapter, check_token_grid, zero_linear
from itryon.conditioning.video_encoder import CausalVideoEncoder
from itryon.data.temporal import frames_to_latent


class InteractionGuider(nn.Module):
    """Hand renders ``(B, 3, T, H, W)`` -> token residual ``(B, N, dim)`` (zero at initialisation).

    Args:
        dim: backbone width.
        patch_size: backbone ``(t, h, w)`` patch.
        spatial_compression, temporal_compression: the VAE's factors.
        hidden_dim: width of the conv features and of the attention layers.
        num_layers: self-attention layers over the token grid.
        num_heads: heads of those layers.
    """

    def __init__(
        self,
        dim: int,
        patch_size: Sequence[int],
        spatial_compression: int,
        temporal_compression: int,
        hidden_dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
    ) -> None:
        super().__init__()
        self.encoder = CausalVideoEncoder(3, hidden_dim, spatial_compression, temporal_compression, patch_size)
        # conditional position encoding: a depthwise conv, so attention knows where each token sits at any resolution
        self.position = nn.Conv3d(hidden_dim, hidden_dim, kernel_size=3, padding=1, groups=hidden_dim)
        layer = nn.TransformerEncoderLayer(
            hidden_dim,
            num_heads,
            dim_feedforward=4 * hidden_dim,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.attention = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_dim)
        self.proj = zero_linear(hidden_dim, dim)

    def forward(self, hands: torch.Tensor) -> torch.Tensor:
        grid = self.encoder(hands)  # (B, hidden, F', H', W')
        grid = grid + self.position(grid)
        tokens = self.attention(grid.flatten(2).transpose(1, 2))  # (B, N, hidden)
        return self.proj(self.norm(tokens))  # (B, N, dim)


class HandPriorAdapter(ConditioningAdapter):
    """Reads ``hand_prior`` ``(B, 3, T, H, W)`` (zeros where no hand) into the Interaction Guider's token residual.

    The residual of a token frame whose source frames show no hand is exactly zero (a gate from the renders), so
    clips without hands, and dropped samples (CFG), get exactly the backbone's tokens.
    """

    def __init__(
        self,
        dim: int,
        patch_size: Sequence[int] = (1, 2, 2),
        spatial_compression: int = 8,
        temporal_compression: int = 4,
        hidden_dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        drop_prob: float = 0.0,
    ) -> None:
        super().__init__(("hand_prior",), "residual", trainable=True, drop_prob=drop_prob)
        self.patch_size = tuple(int(p) for p in patch_size)
        self.temporal_compression = temporal_compression
        self.guider = InteractionGuider(
            dim, self.patch_size, spatial_compression, temporal_compression, hidden_dim, num_layers, num_heads
        )

    def presence(self, hands: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``(B, F')`` float: 1 for token frames with a hand in any source frame (and a kept sample), else 0."""
        per_frame = (hands.abs().amax(dim=(1, 3, 4)) > 0).float()  # (B, T)
        per_latent = frames_to_latent(per_frame, self.temporal_compression)  # (B, F)
        pt = self.patch_size[0]
        per_token_frame = per_latent.unflatten(-1, (-1, pt)).amax(-1)  # (B, F')
        return per_token_frame * keep.to(per_token_frame.device).float().unsqueeze(1)

    def forward(self, batch: Mapping[str, Any], env: ConditionEnv, keep: torch.Tensor) -> AdapterOutput:
        hands = batch["hand_prior"].to(self.guider.proj.weight.dtype)  # (B, 3, T, H, W)
        gate = self.presence(hands, keep)  # (B, F')
        check_token_grid(self.guider.encoder.token_grid(*hands.shape[2:]), env, self.patch_size, "HandPriorAdapter")
        # the guider runs even on hand-free batches so that every parameter takes part in each step (DDP)
        residual = self.guider(hands)  # (B, N, dim)
        residual = residual.unflatten(1, (gate.shape[1], -1)) * gate[:, :, None, None].to(residual.dtype)
        return AdapterOutput("residual", residual.flatten(1, 2))
