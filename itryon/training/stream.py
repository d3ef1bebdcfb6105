"""The main stream of Wan-VACE's reference layout: ``R`` reference frames in front of the ``F`` video frames.

With a ``vace_reference`` input (:class:`~itryon.models.backbone.BackboneInputs`) the module denoises
``(B, C, R + F, h, w)`` latents whose leading frames belong to the reference images: their clean values are the
reference latents (so training noises them like the video), sampling starts them from noise as Wan and diffusers
do, and only the video frames are decoded and scored.
"""

from __future__ import annotations

import torch

from itryon.models.backbone import BackboneInputs


def with_stream_references(video: torch.Tensor, inputs: BackboneInputs) -> torch.Tensor:
    """``video`` latents ``(B, C, F, h, w)`` -> ``(B, C, R + F, h, w)`` with the reference latents in front."""
    if inputs.vace_reference is None:
        return video
    return torch.cat([inputs.vace_reference[:, : video.shape[1]].to(video.dtype), video], dim=2)


def video_frames(stream: torch.Tensor, inputs: BackboneInputs) -> torch.Tensor:
    """The video part ``(B, C, F, h, w)`` of main-stream latents ``(B, C, R + F, h, w)``."""
    return stream[:, :, inputs.stream_reference_frames :]


def stream_shape(shape: tuple[int, ...], inputs: BackboneInputs) -> tuple[int, ...]:
    """The main stream's latent shape for video latents of ``shape`` ``(B, C, F, h, w)``."""
    b, c, f, h, w = shape
    return (b, c, f + inputs.stream_reference_frames, h, w)
