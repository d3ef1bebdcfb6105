"""Try-on videos of any length and size: fit to the model, sample (in overlapping windows when long), bring back.

:func:`generate` is what :class:`~itryon.inference.pipeline.ITryOnPipeline` and ``itryon infer`` run; on a batch
already at the model's shape, with one window and no paste-back, it is :func:`~itryon.inference.sampling.sample_video`
itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from itryon.diffusion.sampler import FlowSampler
from itryon.inference.guidance import GuidanceGroup
from itryon.inference.sampling import sample_video
from itryon.inference.windows import (
    WindowBlender,
    crop_to,
    fit_to_grid,
    resize_batch,
    resize_video,
    slice_batch,
    window_starts,
)


def model_grid(model: Any) -> tuple[int, int]:
    """``(spatial, temporal)``: pixel sizes must be multiples of ``spatial`` (the VAE's compression times the
    backbone's patch), frame counts ``1 + temporal * k``."""
    vae = model.vae
    patch = tuple(getattr(model.backbone, "patch_size", (1, 1, 1)))
    if patch[0] != 1:
        raise ValueError(f"windowed inference supports a temporal patch of 1; the backbone's patch is {patch}")
    sc = int(vae.spatial_compression)
    return math.lcm(sc * int(patch[1]), sc * int(patch[2])), int(vae.temporal_compression)


@torch.no_grad()
def generate(
    model: Any,
    batch: Mapping[str, Any],
    sampler: FlowSampler,
    groups: Sequence[GuidanceGroup] = (),
    *,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    window: int | None = None,
    overlap: int = 4,
    normalise_windows: bool = True,
    paste_back: bool = False,
) -> torch.Tensor:
    """The try-on video ``(B, 3, T, H, W)`` at the size and length of ``batch["agnostic"]``.

    ``size`` ``(H', W')`` resizes the inputs for the model (the output is resized back); sizes are then padded to the
    model's grid and, for one window, frames to ``1 + 4k``. ``window`` (``1 + 4k`` frames) splits longer videos into
    windows overlapping by ``overlap`` frames, each sampled from the same seed, colour-matched and cross-faded
    (:class:`~itryon.inference.windows.WindowBlender`, ``normalise_windows``). ``paste_back`` keeps the source
    frames (``batch["video"]`` when given, else ``batch["agnostic"]``) outside ``agnostic_mask``, at the input's size.
    """
    person = batch["agnostic"]
    _, _, frames, height, width = person.shape
    spatial, temporal = model_grid(model)
    if window is not None and temporal > 1 and (window - 1) % temporal:
        raise ValueError(f"window must be 1 + {temporal}k frames, got {window}")
    work = resize_batch(batch, size) if size is not None else dict(batch)
    work_h, work_w = work["agnostic"].shape[-2:]
    windowed = window is not None and frames > window
    work = fit_to_grid(work, spatial, 1 if windowed else temporal)
    if not windowed:
        video = sample_video(model, work, sampler, groups, seed)
    else:
        region = work["agnostic_mask"]
        blender = WindowBlender(frames, normalise=normalise_windows, region=region)
        for start in window_starts(frames, window, overlap):
            part = slice_batch(work, start, start + window)
            blender.add(start, sample_video(model, part, sampler, groups, seed))
        video = blender.result()
    video = crop_to(video, frames, work_h, work_w)
    if (work_h, work_w) != (height, width):
        video = resize_video(video, (height, width)).clamp(-1.0, 1.0)
    if paste_back:
        source = batch.get("video", person).to(video.dtype)
        keep = 1.0 - batch["agnostic_mask"].to(video.dtype)  # (B, 1, T, H, W): 1 outside the generated region
        video = video * (1.0 - keep) + source * keep
    return video
