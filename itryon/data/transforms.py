"""Clip transforms on contract samples: resizing and temporal cropping of real videos to the training shape.

Each transform maps a sample (``itryon.data.contract``) to a sample and keeps every key consistent: videos,
masks, the hand prior and the interaction weights move together, and action spans are remapped to the frames
that are kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from itryon.data.contract import MASK_KEYS, VIDEO_KEYS, interaction_from_actions, reference_video


class Resize:
    """Resize every video to ``height x width`` (bilinear with antialiasing; masks nearest, so they stay binary)
    and, with ``garment_height``/``garment_width``, the in-shop garment image and its mask."""

    def __init__(
        self, height: int, width: int, garment_height: int | None = None, garment_width: int | None = None
    ) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"Resize needs a positive size, got {height}x{width}")
        if (garment_height is None) != (garment_width is None):
            raise ValueError("give both garment_height and garment_width, or neither")
        self.size = (height, width)
        self.garment_size = (garment_height, garment_width) if garment_height is not None else None

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(sample)
        for key in VIDEO_KEYS + MASK_KEYS:
            if key in out:
                video = out[key].transpose(0, 1)  # (T, C, H, W): frames as a batch
                out[key] = _resize(video, self.size, nearest=key in MASK_KEYS).transpose(0, 1)
        if self.garment_size is not None:
            out["garment"] = _resize(out["garment"][None], self.garment_size, nearest=False)[0]
            if "garment_mask" in out:
                out["garment_mask"] = _resize(out["garment_mask"][None], self.garment_size, nearest=True)[0]
        meta = dict(out.get("meta", {}))
        meta.setdefault("original_size", tuple(reference_video(sample).shape[-2:]))
        out["meta"] = meta
        return out


class ResizeCrop(Resize):
    """Scale every video to cover ``height x width`` (keeping its aspect ratio), then crop the centre to that size;
    the garment (with ``garment_height``/``garment_width``) is resized as by :class:`Resize`."""

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        h, w = reference_video(sample).shape[-2:]
        scale = max(self.size[0] / h, self.size[1] / w)
        cover = (max(self.size[0], round(h * scale)), max(self.size[1], round(w * scale)))
        out = Resize(*cover, *(self.garment_size or (None, None)))(sample)
        top, left = (cover[0] - self.size[0]) // 2, (cover[1] - self.size[1]) // 2
        for key in VIDEO_KEYS + MASK_KEYS:
            if key in out:
                out[key] = out[key][..., top : top + self.size[0], left : left + self.size[1]]
        return out


def _resize(x: torch.Tensor, size: tuple[int, int], nearest: bool) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    if nearest:
        return F.interpolate(x, size=size, mode="nearest-exact")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


class TemporalCrop:
    """Keep ``num_frames`` frames, every ``stride``-th from a start frame (random, or 0 with ``random=False``).

    Action spans are remapped to the kept frames (a kept frame belongs to an action when its source frame did),
    actions with no kept frame are dropped, ``interaction`` is recomputed and ``meta.fps`` divided by ``stride``.
    A clip shorter than ``1 + (num_frames - 1) * stride`` frames is an error naming it.
    """

    def __init__(self, num_frames: int, stride: int = 1, random: bool = True) -> None:
        if num_frames < 1 or stride < 1:
            raise ValueError(f"TemporalCrop needs num_frames >= 1 and stride >= 1, got {num_frames}, {stride}")
        self.num_frames, self.stride, self.random = num_frames, stride, random

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        length = reference_video(sample).shape[1]
        span = 1 + (self.num_frames - 1) * self.stride
        if length < span:
            sid = sample.get("meta", {}).get("id", "?")
            raise ValueError(
                f"clip {sid!r} has {length} frames; TemporalCrop({self.num_frames}, stride={self.stride}) needs {span}"
            )
        start = int(torch.randint(0, length - span + 1, ()).item()) if self.random else 0
        index = torch.arange(start, start + span, self.stride)
        out = dict(sample)
        for key in VIDEO_KEYS + MASK_KEYS:
            if key in out:
                out[key] = out[key][:, index]
        actions = []
        for action in sample["actions"]:
            first = max(0, math.ceil((int(action["start"]) - start) / self.stride))
            end = min(self.num_frames, math.ceil((int(action["end"]) - start) / self.stride))
            if first < end:
                actions.append({**action, "start": first, "end": end})
        meta = dict(sample.get("meta", {}))
        fps = meta.get("fps")
        if fps:
            meta["fps"] = float(fps) / self.stride
            for action in actions:
                action["start_s"], action["end_s"] = action["start"] / meta["fps"], action["end"] / meta["fps"]
        meta["source_frames"] = (start, start + span, self.stride)
        out.update(actions=actions, interaction=interaction_from_actions(actions, self.num_frames), meta=meta)
        return out
