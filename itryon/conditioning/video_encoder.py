"""A light causal 3D-conv encoder from a pixel-space condition video to the DiT token grid.

Used by the pose residual, the Interaction Guider (hand prior) and any adapter that turns a rendered video
into per-token features. Time follows the causal VAE (frame 0 alone, then groups of ``c`` frames: 1 + ck
frames -> 1 + k latent frames) and then the backbone's temporal patch; space is reduced by the VAE's spatial
compression times the backbone's spatial patch, with stride-2 convolutions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from itryon.data.temporal import latent_frame_count


class CausalVideoEncoder(nn.Module):
    """``(B, in_channels, T, H, W)`` -> ``(B, out_channels, F', H', W')`` on the DiT token grid.

    Args:
        in_channels: channels of the condition video (3 for renders).
        out_channels: feature channels per token.
        spatial_compression: the VAE's spatial factor.
        temporal_compression: the VAE's temporal factor (``c``).
        patch_size: the backbone's ``(t, h, w)`` patch.
        base_channels: channels after the first stride-2 stage, doubled per stage up to ``out_channels``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_compression: int,
        temporal_compression: int,
        patch_size: Sequence[int],
        base_channels: int = 16,
    ) -> None:
        super().__init__()
        pt, ph, pw = (int(p) for p in patch_size)
        if ph != pw:
            raise ValueError(f"CausalVideoEncoder needs a square spatial patch, got patch_size {tuple(patch_size)}")
        factor = spatial_compression * ph
        stages = int(round(math.log2(factor)))
        if 2**stages != factor:
            raise ValueError(
                f"spatial reduction spatial_compression * patch = {spatial_compression} * {ph} = {factor} must be a power of two"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.temporal_compression = temporal_compression
        self.temporal_stride = temporal_compression * pt
        self.spatial_factor = factor
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(stages):
            nxt = min(out_channels, base_channels * 2**i)
            layers += [nn.Conv3d(channels, nxt, kernel_size=3, stride=(1, 2, 2), padding=1), nn.SiLU()]
            channels = nxt
        self.spatial = nn.Sequential(*layers)
        # groups of c * pt frames become one token frame (kernel = stride: no overlap across token frames)
        self.temporal = nn.Conv3d(
            channels, out_channels, kernel_size=(self.temporal_stride, 1, 1), stride=(self.temporal_stride, 1, 1)
        )

    def token_grid(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Token grid ``(F', H', W')`` for a video of ``frames x height x width`` pixels."""
        c = self.temporal_compression
        if (c > 1 and (frames - 1) % c) or height % self.spatial_factor or width % self.spatial_factor:
            raise ValueError(
                f"a {frames}x{height}x{width} condition video does not map onto the token grid: frames must be 1 + {c}k "
                f"and height/width divisible by {self.spatial_factor}"
            )
        latent_frames = latent_frame_count(frames, c)
        return latent_frames * c // self.temporal_stride, height // self.spatial_factor, width // self.spatial_factor

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = video.shape
        grid = self.token_grid(t, h, w)
        c = self.temporal_compression
        if c > 1:
            # causal alignment: frame 0 alone forms the first latent frame, as in the VAE
            video = torch.cat([video[:, :, :1].expand(-1, -1, c - 1, -1, -1), video], dim=2)  # (B, Cin, c*F, H, W)
        out = self.temporal(self.spatial(video))  # (B, out, F', H', W')
        if tuple(out.shape[2:]) != grid:
            raise ValueError(
                f"CausalVideoEncoder produced grid {tuple(out.shape[2:])} for input {(t, h, w)}, expected {grid}; "
                f"the latent frame count must be divisible by the temporal patch"
            )
        return out
