"""Trivial predictions that every quality table carries as reference rows, computed on the same clips.

``copy_input``: the agnostic video itself (the person with the garment region greyed).
``garment_mean_fill``: the agnostic video with its ``agnostic_mask`` region filled with the in-shop garment's
mean colour over its ``garment_mask`` (over the whole garment image when the batch has no ``garment_mask``).
Each takes a contract batch and returns ``(B, 3, T, H, W)`` in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

Predictor = Callable[[Mapping[str, Any]], torch.Tensor]


def copy_input(batch: Mapping[str, Any]) -> torch.Tensor:
    return batch["agnostic"].clone()


def garment_mean_colour(batch: Mapping[str, Any]) -> torch.Tensor:
    """``(B, 3)``: the mean colour of each in-shop garment over its silhouette."""
    garment = batch["garment"]  # (B, 3, Hg, Wg)
    mask = batch.get("garment_mask")
    if mask is None:
        return garment.mean(dim=(2, 3))
    weight = mask.to(garment.dtype)  # (B, 1, Hg, Wg)
    area = weight.sum(dim=(2, 3))
    if bool((area == 0).any()):
        ids = [m.get("id", "?") for m in batch.get("meta", [])]
        raise ValueError(f"garment_mask is empty for a sample of the batch {ids}: no garment pixels to average")
    return (garment * weight).sum(dim=(2, 3)) / area


def garment_mean_fill(batch: Mapping[str, Any]) -> torch.Tensor:
    agnostic = batch["agnostic"]  # (B, 3, T, H, W)
    mask = batch["agnostic_mask"].to(agnostic.dtype)  # (B, 1, T, H, W)
    colour = garment_mean_colour(batch)[:, :, None, None, None]
    return agnostic * (1.0 - mask) + colour * mask


REFERENCES: dict[str, Predictor] = {"copy_input": copy_input, "garment_mean_fill": garment_mean_fill}
