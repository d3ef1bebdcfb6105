"""Wan-VACE's context layout with reference frames, shared by every backbone with a VACE branch."""

from __future__ import annotations

import torch


def with_reference_context(
    vace_context: torch.Tensor,  # (B, C_vace, F or R + F, H, W)
    reference: torch.Tensor | None,  # (B, C_in, R, H, W)
    frames: int,
    out_channels: int,
) -> torch.Tensor:
    """The VACE context over ``[reference frames, video frames]`` ``(B, C_vace, R + F, H, W)``.

    A context that covers the ``F`` video frames only gets Wan-VACE's reference context frames in front: the
    reference latent's first ``out_channels`` channels, then zeros. A context that already covers ``R + F`` frames
    is returned as it is.
    """
    ref_frames = 0 if reference is None else reference.shape[2]
    if vace_context.shape[2] not in (frames, frames + ref_frames):
        raise ValueError(
            f"vace_context must cover the {frames} video frames (or {frames + ref_frames} with references), "
            f"got {vace_context.shape[2]} frames"
        )
    if reference is None or vace_context.shape[2] != frames:
        return vace_context
    batch, channels, _, height, width = vace_context.shape
    if channels < out_channels:
        raise ValueError(
            f"building reference context frames needs vace_in_channels >= out_channels, "
            f"got {channels} < {out_channels}; pass vace_context with the reference frames"
        )
    padding = reference.new_zeros(batch, channels - out_channels, ref_frames, height, width)
    ref_context = torch.cat([reference[:, :out_channels], padding], dim=1)
    return torch.cat([ref_context.to(vace_context.dtype), vace_context], dim=2)
