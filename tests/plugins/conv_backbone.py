"""A backbone added through config only: a small 3D-conv denoiser behind the backbone seam."""

from __future__ import annotations

import torch
from torch import nn

from itryon.models.backbone import Backbone, BackboneInputs


class ConvBackbone(Backbone):
    """``[latents, channels, mean reference frame, VACE context]`` -> latents, FiLM-modulated by the timestep and
    the mean context token. Counts no FLOPs and keeps the default parallelisation plan."""

    accepts = frozenset({"context", "channels", "vace", "reference"})

    def __init__(
        self, in_channels: int, out_channels: int, vace_in_channels: int = 0, text_dim: int = 64, hidden: int = 32
    ):
        super().__init__()
        self.in_channels, self.out_channels, self.vace_in_channels = in_channels, out_channels, vace_in_channels
        self.input = nn.Conv3d(2 * in_channels + vace_in_channels, hidden, kernel_size=3, padding=1)
        self.film = nn.Linear(text_dim + 1, 2 * hidden)
        self.output = nn.Conv3d(hidden, out_channels, kernel_size=3, padding=1)

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, inputs: BackboneInputs) -> torch.Tensor:
        self.check_inputs(inputs)
        x = inputs.with_channels(latents)  # (B, in_channels, F, h, w)
        b, _, f, h, w = x.shape
        parts = [x]
        reference = inputs.reference_latents
        parts.append(
            reference.mean(2, keepdim=True).expand(-1, -1, f, -1, -1) if reference is not None else torch.zeros_like(x)
        )
        if self.vace_in_channels:
            vace = inputs.vace_context
            parts.append(vace if vace is not None else x.new_zeros(b, self.vace_in_channels, f, h, w))
        hidden = self.input(torch.cat(parts, dim=1))  # (B, hidden, F, h, w)
        condition = torch.cat([inputs.context.mean(1), timestep[:, None] / 1000], dim=1)  # (B, text_dim + 1)
        scale, shift = self.film(condition).view(b, -1, 1, 1, 1).chunk(2, dim=1)
        return self.output(torch.relu(hidden * (1 + scale) + shift))
