"""The plain sampling path: one batch at the shape the model takes -> the try-on video.

``model`` is anything with ``conditioning``, ``vae``, ``latent_shape(video)`` and ``predict_velocity(x_t, timestep,
conditions)`` -- a :class:`~itryon.training.TryOnModule`, whose ``generate`` calls :func:`sample_video`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from itryon.diffusion.sampler import FlowSampler
from itryon.inference.guidance import GuidanceGroup, combine, repeat_batch, variant_keeps
from itryon.training.stream import stream_shape, video_frames


@torch.no_grad()
def sample_video(
    model: Any,
    batch: Mapping[str, Any],
    sampler: FlowSampler,
    groups: Sequence[GuidanceGroup] = (),
    seed: int = 0,
    paste_back: bool = False,
) -> torch.Tensor:
    """The try-on video ``(B, 3, T, H, W)`` in [-1, 1] for the conditions in ``batch`` (``T = 1 + 4k``, ``H, W``
    multiples of the model's grid).

    Noise is drawn from ``seed`` in the latent shape of ``batch["agnostic"]``; guidance ``groups``
    (:func:`~itryon.inference.guidance.guidance_groups`) run as extra variants of one batched call per step.
    ``paste_back`` keeps ``batch["agnostic"]``'s pixels outside ``agnostic_mask``.
    """
    person = batch["agnostic"]  # (B, 3, T, H, W): the shapes come from the conditions, not from a target
    shape = model.latent_shape(person)
    variants = 1 + len(groups)
    stacked = repeat_batch(batch, variants)
    keep = variant_keeps(model.conditioning, groups, shape[0], person.device) if groups else None
    cond = model.conditioning(stacked, vae=model.vae, latent_shape=(variants * shape[0], *shape[1:]), keep=keep)
    gen = torch.Generator(device=person.device).manual_seed(seed)
    # Wan-VACE's reference layout puts reference frames in front of the video in the main stream, started from noise
    noise = torch.randn(stream_shape(shape, cond.inputs), generator=gen, device=person.device, dtype=person.dtype)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if variants == 1:
            return model.predict_velocity(x, t, cond)
        v = model.predict_velocity(torch.cat([x] * variants), torch.cat([t] * variants), cond)  # (V*B, C, F, h, w)
        return combine(v, groups)

    latents = video_frames(sampler.integrate(velocity, noise), cond.inputs)
    video = model.vae.decode(latents).clamp(-1.0, 1.0)
    if paste_back:
        keep_px = 1.0 - batch["agnostic_mask"].to(video.dtype)  # (B, 1, T, H, W): 1 outside the generated region
        video = video * (1.0 - keep_px) + person.to(video.dtype) * keep_px
    return video
