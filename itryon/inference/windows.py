"""Videos of any length and size: fitting a batch to the model's grid and back, and overlapping temporal windows.

* :func:`fit_to_grid` pads height and width to multiples of the model's token size (edge pixels repeated; the
  padding is outside ``agnostic_mask``) and the frame count to ``1 + c k`` (the last frame repeated);
  :func:`crop_to` undoes it on the output.
* :func:`window_starts` covers ``T`` frames with windows of ``window`` frames overlapping by at least ``overlap``
  (the last one ends at the last frame); :func:`slice_batch` cuts a batch to one window (action spans remapped).
* :class:`WindowBlender` joins the windows' outputs: each new window's colours are matched to what is already
  written in the overlap (per channel mean and standard deviation inside the generated region, an AdaCN-like
  normalisation as CatV2TON uses against the drift of sliding windows), then cross-faded linearly in the overlap.
  A single window passes through untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from itryon.data.contract import MASK_KEYS, VIDEO_KEYS, interaction_from_actions

ZERO_PADDED = ("hand_prior",)  # zero means "no hand": its padding must not invent hands


def padded_frames(num_frames: int, temporal_compression: int) -> int:
    """The smallest ``1 + c k >= num_frames``."""
    c = temporal_compression
    return num_frames if c == 1 else 1 + -(-(num_frames - 1) // c) * c


def fit_to_grid(batch: Mapping[str, Any], spatial: int, temporal: int) -> dict[str, Any]:
    """``batch`` padded to ``H, W`` multiples of ``spatial`` and ``T = 1 + temporal k`` (see the module docstring)."""
    ref = batch["agnostic"]
    _, _, t, h, w = ref.shape
    pt = padded_frames(t, temporal) - t
    ph, pw = -h % spatial, -w % spatial
    if not (pt or ph or pw):
        return dict(batch)
    out = dict(batch)
    for key in VIDEO_KEYS + MASK_KEYS:
        if key not in batch:
            continue
        x = batch[key]
        if pt:
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, pt, -1, -1)], dim=2)
        if ph or pw:
            if key in MASK_KEYS or key in ZERO_PADDED:
                x = F.pad(x, (0, pw, 0, ph))
            else:
                x = F.pad(x.flatten(1, 2), (0, pw, 0, ph), mode="replicate").unflatten(1, x.shape[1:3])
        out[key] = x
    if "interaction" in batch and pt:
        inter = batch["interaction"]
        out["interaction"] = torch.cat([inter, inter[:, -1:].expand(-1, pt)], dim=1)
    return out


def crop_to(video: torch.Tensor, num_frames: int, height: int, width: int) -> torch.Tensor:
    """``video`` ``(B, C, T', H', W')`` cut back to its first ``num_frames`` frames and ``height x width``."""
    return video[:, :, :num_frames, :height, :width]


def resize_batch(batch: Mapping[str, Any], size: tuple[int, int]) -> dict[str, Any]:
    """Every video of ``batch`` resized to ``size`` (bilinear with antialiasing, masks nearest so they stay binary)."""
    out = dict(batch)
    for key in VIDEO_KEYS + MASK_KEYS:
        if key in batch and tuple(batch[key].shape[-2:]) != tuple(size):
            out[key] = resize_video(batch[key], size, nearest=key in MASK_KEYS)
    return out


def resize_video(video: torch.Tensor, size: tuple[int, int], nearest: bool = False) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> ``(B, C, T, *size)``."""
    b, c, t, h, w = video.shape
    if (h, w) == tuple(size):
        return video
    frames = video.transpose(1, 2).flatten(0, 1)  # (B*T, C, H, W)
    if nearest:
        frames = F.interpolate(frames, size=tuple(size), mode="nearest-exact")
    else:
        frames = F.interpolate(frames, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return frames.unflatten(0, (b, t)).transpose(1, 2)


def window_starts(num_frames: int, window: int, overlap: int) -> list[int]:
    """First frames of windows of ``window`` frames covering ``num_frames``, consecutive ones sharing at least
    ``overlap`` frames; one window (start 0) when the video is not longer than ``window``."""
    if num_frames <= window:
        return [0]
    if not 0 < overlap < window:
        raise ValueError(f"window overlap must lie in [1, {window - 1}] frames for windows of {window}, got {overlap}")
    stride = window - overlap
    starts = list(range(0, num_frames - window, stride))
    return [*starts, num_frames - window]


def slice_batch(batch: Mapping[str, Any], start: int, end: int) -> dict[str, Any]:
    """Frames ``[start, end)`` of every video of ``batch``; action spans cut and shifted to the window."""
    out = dict(batch)
    for key in VIDEO_KEYS + MASK_KEYS:
        if key in batch:
            out[key] = batch[key][:, :, start:end]
    if "actions" in batch:
        out["actions"] = [
            [
                {**a, "start": max(int(a["start"]), start) - start, "end": min(int(a["end"]), end) - start}
                for a in acts
                if int(a["start"]) < end and int(a["end"]) > start
            ]
            for acts in batch["actions"]
        ]
        ref = batch["agnostic"]
        out["interaction"] = torch.stack([interaction_from_actions(a, end - start) for a in out["actions"]]).to(
            ref.device
        )
    return out


def match_colours(
    new: torch.Tensor, ref: torch.Tensor, region: torch.Tensor | None = None, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample and channel ``(scale, shift)`` ``(B, C, 1, 1, 1)`` so that ``new * scale + shift`` has ``ref``'s
    mean and standard deviation over the frames given (inside ``region`` ``(B, 1, T, H, W)`` when given)."""
    weight = torch.ones_like(new[:, :1]) if region is None else region.to(new.dtype)
    total = weight.sum(dim=(2, 3, 4), keepdim=True).clamp_min(1.0)

    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = (x * weight).sum(dim=(2, 3, 4), keepdim=True) / total
        var = ((x - mean).square() * weight).sum(dim=(2, 3, 4), keepdim=True) / total
        return mean, var.add(eps).sqrt()

    mean_new, std_new = stats(new)
    mean_ref, std_ref = stats(ref)
    scale = std_ref / std_new
    return scale, mean_ref - scale * mean_new


class WindowBlender:
    """Accumulates window outputs ``(B, C, window, H, W)`` into the video ``(B, C, T, H, W)``.

    ``normalise`` turns the colour matching on; ``region`` ``(B, 1, T, H, W)`` (the generated region) limits its
    statistics and its correction to the pixels the model generates.
    """

    def __init__(self, num_frames: int, normalise: bool = True, region: torch.Tensor | None = None) -> None:
        self.num_frames = num_frames
        self.normalise = normalise
        self.region = region
        self.video: torch.Tensor | None = None
        self.written = 0  # frames [0, written) hold output

    def add(self, start: int, window: torch.Tensor) -> None:
        end = start + window.shape[2]
        if self.video is None:
            if start != 0:
                raise ValueError(f"the first window must start at frame 0, got {start}")
            self.video = window.new_zeros((*window.shape[:2], self.num_frames, *window.shape[3:]))
            self.video[:, :, :end] = window
            self.written = end
            return
        if not start < self.written:
            raise ValueError(f"window [{start}, {end}) does not overlap the frames written so far [0, {self.written})")
        overlap = self.written - start
        region = None if self.region is None else self.region[:, :, start:end].to(window.dtype)
        if self.normalise:
            scale, shift = match_colours(
                window[:, :, :overlap],
                self.video[:, :, start : self.written],
                None if region is None else region[:, :, :overlap],
            )
            corrected = window * scale + shift
            window = corrected if region is None else window + (corrected - window) * region
        ramp = torch.arange(1, overlap + 1, dtype=window.dtype, device=window.device) / (overlap + 1)
        ramp = ramp.view(1, 1, -1, 1, 1)  # weight of the new window across the overlap
        self.video[:, :, start : self.written] = (1 - ramp) * self.video[:, :, start : self.written] + ramp * window[
            :, :, :overlap
        ]
        self.video[:, :, self.written : end] = window[:, :, overlap:]
        self.written = max(self.written, end)

    def result(self) -> torch.Tensor:
        if self.video is None or self.written != self.num_frames:
            raise RuntimeError(f"windows cover {self.written} of {self.num_frames} frames")
        return self.video
