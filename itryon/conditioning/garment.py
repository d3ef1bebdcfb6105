"""The in-shop garment image: a reference frame prepended in time (VACE style) or tokens with their own RoPE position."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from itryon.conditioning.base import AdapterOutput, ConditionEnv, ConditioningAdapter, encode_video, where_keep
from itryon.models.rope import grid_positions


class GarmentAdapter(ConditioningAdapter):
    """Reads ``garment`` ``(B, 3, Hg, Wg)``.

    * ``mode="reference"``: the image, resized to the video's pixel size, is encoded by the same VAE as one frame
      and prepended in time (``reference_latents`` ``(B, C, 1, h, w)``); the backbone drops it from the output and,
      with a VACE branch, gives it Wan-VACE's reference context frame. No new parameters.
    * ``mode="wan"`` (pretrained Wan2.1-VACE's layout, as diffusers' ``WanVACEPipeline`` builds it): the encoded
      image is a reference frame of the VACE context only (``vace_reference``); the main stream holds noise at its
      position, which the module adds and integrates with the video. Needs a ``vace`` adapter (the person).
    * ``mode="tokens"``: the image (resized to ``token_size`` pixels, default the video's size) is encoded by the VAE,
      patch-embedded by this adapter (trainable) and appended to the sequence at RoPE time index ``time_index``
      (default: the frame after the last video frame), spatial indices on its own grid.

    ``fit`` says how the image meets the video's size: ``"stretch"`` resizes it to the size (antialiased),
    ``"pad"`` resizes it keeping its aspect ratio (bilinear, as Wan-VACE) and centres it on a white canvas; the
    default is ``"pad"`` for ``mode="wan"`` and ``"stretch"`` otherwise.

    Null condition: a grey (zero) garment image. Appended or prepended tokens enter softmax self-attention: on a
    ``WanDiT(zero_init_gates=True)`` the video tokens read them through the zero-initialised gated branch, so both
    modes start as an exact no-op on a pretrained backbone; without gates they join the one softmax (what a
    pretrained Wan-VACE expects of its reference frames).
    """

    def __init__(
        self,
        mode: Literal["reference", "wan", "tokens"] = "reference",
        latent_channels: int = 16,
        dim: int = 1536,
        patch_size: Sequence[int] = (1, 2, 2),
        token_size: Sequence[int] | None = None,
        time_index: int | None = None,
        drop_prob: float = 0.0,
        fit: Literal["stretch", "pad"] | None = None,
    ) -> None:
        if mode not in ("reference", "wan", "tokens"):
            raise ValueError(f"GarmentAdapter mode must be 'reference', 'wan' or 'tokens', got {mode!r}")
        if fit not in (None, "stretch", "pad"):
            raise ValueError(f"GarmentAdapter fit must be 'stretch' or 'pad', got {fit!r}")
        kind = "vace_reference" if mode == "wan" else mode
        super().__init__(("garment",), kind, trainable=mode == "tokens", drop_prob=drop_prob)
        self.mode = mode
        self.fit = fit or ("pad" if mode == "wan" else "stretch")
        self.patch_size = tuple(int(p) for p in patch_size)
        self.token_size = tuple(int(s) for s in token_size) if token_size is not None else None
        self.time_index = time_index
        self.embed: nn.Conv3d | None = None
        if mode != "tokens":
            self.out_channels = latent_channels
        else:
            _, ph, pw = self.patch_size
            self.embed = nn.Conv3d(latent_channels, dim, kernel_size=(1, ph, pw), stride=(1, ph, pw))

    def forward(self, batch: Mapping[str, Any], env: ConditionEnv, keep: torch.Tensor) -> AdapterOutput:
        garment = where_keep(batch["garment"], keep, 0.0)  # (B, 3, Hg, Wg)
        size = env.pixel_size if self.mode != "tokens" or self.token_size is None else self.token_size
        if self.fit == "pad":
            garment = fit_on_canvas(garment, tuple(size))
        elif tuple(garment.shape[-2:]) != tuple(size):
            garment = F.interpolate(garment, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
        latents = encode_video(env.vae, garment.unsqueeze(2))  # (B, C, 1, h, w)
        if self.mode != "tokens":
            return AdapterOutput(self.output_kind, latents)
        grid = self.embed(latents.to(self.embed.weight.dtype))  # (B, dim, 1, H', W')
        _, _, _, gh, gw = grid.shape
        frames = env.latent_shape[2] // self.patch_size[0]
        t = frames if self.time_index is None else self.time_index
        positions = grid_positions(1, gh, gw, frame_offset=t, device=grid.device)  # (M, 3)
        return AdapterOutput("tokens", grid.flatten(2).transpose(1, 2), positions=positions)


def fit_on_canvas(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``image`` ``(B, 3, Hg, Wg)`` in [-1, 1] resized to fit ``size`` ``(H, W)`` keeping its aspect ratio (bilinear,
    no antialiasing) and centred on a white canvas ``(B, 3, H, W)``, as Wan-VACE places reference images."""
    height, width = size
    scale = min(height / image.shape[-2], width / image.shape[-1])
    new_h, new_w = int(image.shape[-2] * scale), int(image.shape[-1] * scale)
    resized = F.interpolate(image, size=(new_h, new_w), mode="bilinear", align_corners=False)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas = image.new_ones(image.shape[0], image.shape[1], height, width)
    canvas[:, :, top : top + new_h, left : left + new_w] = resized
    return canvas
