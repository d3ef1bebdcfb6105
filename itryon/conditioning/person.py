"""The garment-agnostic person: agnostic video + agnostic mask, as a VACE context or as extra latent channels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from itryon.conditioning.base import (
    AdapterOutput,
    ConditionEnv,
    ConditioningAdapter,
    encode_video,
    fold_mask,
    where_keep,
)
from itryon.models.vae import PixelVAE


class PersonAdapter(ConditioningAdapter):
    """Reads ``agnostic`` ``(B, 3, T, H, W)`` and ``agnostic_mask`` ``(B, 1, T, H, W)`` (1 = generate).

    * ``mode="vace"`` (Wan2.1-VACE inpainting input): ``[E(agnostic * (1 - m)), E(agnostic * m), fold(m)]`` with
      ``E`` the VAE and ``fold`` the VACE mask folding, ``2 * latent_channels + s * s`` channels of the VACE context.
    * ``mode="channels"`` (a backbone without a context branch): ``[E(agnostic * (1 - m)), fold(m)]``,
      ``latent_channels + s * s`` channels concatenated to the noisy latents.

    With ``pose_in_mask=True`` (VACE mode only) the adapter also reads ``pose`` and draws the pose render inside
    the region to generate: ``reactive = pose * m`` instead of ``agnostic * m`` (the greyed region), VACE's way of
    composing a control video with inpainting, which keeps the pretrained ``2C + s * s`` context width.

    The output's ``estimate`` is the latent of the agnostic video with the region to generate greyed out (the kept
    region), the clean-latent guess a residual-predicting module starts from: copy-the-input.

    ``control_encoding`` says how the region to generate (``E(agnostic * m)``, or the pose drawn there) enters the
    context: ``"vae"`` (Wan-VACE: the same VAE as the video) or ``"fold"``: its pixels folded into channels exactly
    (``itryon.models.PixelVAE``: ``3 * t * s * s`` channels), for a latent space too small to carry thin control
    renders (a 16-channel ``LinearVAE`` keeps a skeleton's lines with a relative error of 0.39, the fold with
    none). The context is then ``latent_channels + 3 * t * s * s + s * s`` channels wide.

    ``mask_threshold`` (Wan-VACE: 0.5) binarises the mask (``m > threshold``) before it masks the video, as
    diffusers' ``WanVACEPipeline`` does; the folded mask channels keep the mask's own values. None (default) masks
    with the mask as it is.

    Null condition (CFG dropout): a grey video with the mask everywhere (generate everything), VACE's
    text-to-video input. The output paths are zero-initialised in the backbone (VACE projections, or the extra
    patch-embedding channels loaded as zeros), so adding this adapter leaves a pretrained backbone unchanged.
    """

    def __init__(
        self,
        mode: Literal["vace", "channels"] = "vace",
        latent_channels: int = 16,
        spatial_compression: int = 8,
        pose_in_mask: bool = False,
        drop_prob: float = 0.0,
        mask_threshold: float | None = None,
        control_encoding: Literal["vae", "fold"] = "vae",
        temporal_compression: int = 4,
    ) -> None:
        if control_encoding not in ("vae", "fold"):
            raise ValueError(f"PersonAdapter control_encoding must be 'vae' or 'fold', got {control_encoding!r}")
        if control_encoding == "fold" and mode != "vace":
            raise ValueError(
                "PersonAdapter(control_encoding='fold') folds the VACE context's region: it needs mode='vace'"
            )
        if mode not in ("vace", "channels"):
            raise ValueError(f"PersonAdapter mode must be 'vace' or 'channels', got {mode!r}")
        if pose_in_mask and mode != "vace":
            raise ValueError(
                "PersonAdapter(pose_in_mask=True) composes the pose into the VACE context: it needs mode='vace'"
            )
        keys = ("agnostic", "agnostic_mask", "pose") if pose_in_mask else ("agnostic", "agnostic_mask")
        super().__init__(keys, mode, trainable=False, drop_prob=drop_prob)
        self.mode = mode
        self.pose_in_mask = pose_in_mask
        self.mask_threshold = mask_threshold
        self.latent_channels = latent_channels
        self.spatial_compression = spatial_compression
        self.control_encoding = control_encoding
        self.temporal_compression = temporal_compression
        self.control_fold = PixelVAE(spatial_compression, temporal_compression) if control_encoding == "fold" else None
        control = self.control_fold.latent_channels if self.control_fold is not None else latent_channels
        fold = spatial_compression * spatial_compression
        self.out_channels = (latent_channels + control if mode == "vace" else latent_channels) + fold

    def forward(self, batch: Mapping[str, Any], env: ConditionEnv, keep: torch.Tensor) -> AdapterOutput:
        if env.spatial_compression != self.spatial_compression or env.latent_shape[1] != self.latent_channels:
            raise ValueError(
                f"PersonAdapter was built for latent_channels={self.latent_channels}, spatial_compression="
                f"{self.spatial_compression}; the VAE gives {env.latent_shape[1]} and {env.spatial_compression}"
            )
        if self.control_fold is not None and env.temporal_compression != self.temporal_compression:
            raise ValueError(
                f"PersonAdapter was built for temporal_compression={self.temporal_compression}; the VAE has "
                f"{env.temporal_compression}"
            )
        agnostic = where_keep(batch["agnostic"], keep, 0.0)  # (B, 3, T, H, W)
        mask = where_keep(batch["agnostic_mask"].to(agnostic.dtype), keep, 1.0)  # (B, 1, T, H, W)
        frames = env.latent_shape[2]
        folded = fold_mask(mask, frames, self.spatial_compression)  # (B, s*s, F, h, w)
        if self.mask_threshold is not None:
            mask = (mask > self.mask_threshold).to(mask.dtype)
        if self.mode == "vace":
            inside = where_keep(batch["pose"], keep, 0.0) if self.pose_in_mask else agnostic
            if self.control_fold is not None:
                inactive = encode_video(env.vae, agnostic * (1 - mask))  # (B, C, F, h, w)
                reactive = self.control_fold.encode(inside * mask).to(inactive.dtype)  # (B, 3*t*s*s, F, h, w)
            else:
                both = torch.cat([agnostic * (1 - mask), inside * mask], dim=0)  # (2B, 3, T, H, W): one VAE call
                inactive, reactive = encode_video(env.vae, both).chunk(2, dim=0)  # (B, C, F, h, w) each
            value = torch.cat([inactive, reactive, folded.to(inactive.dtype)], dim=1)
            return AdapterOutput(self.output_kind, value, estimate=inactive)
        inactive = encode_video(env.vae, agnostic * (1 - mask))  # (B, C, F, h, w)
        value = torch.cat([inactive, folded.to(inactive.dtype)], dim=1)
        return AdapterOutput(self.output_kind, value, estimate=inactive)
