"""The batch contract every dataset yields (docs/architecture.md, "Data contract"), its validation and its collate.

Per sample (``T`` frames, ``H x W``):

==================  =========================  ============================================
key                 shape / type               meaning
==================  =========================  ============================================
video               float [3,T,H,W] in [-1,1]  ground-truth person video (target)
agnostic            float [3,T,H,W]            person video with the garment region greyed
agnostic_mask       float [1,T,H,W] in {0,1}   1 where the model must generate
pose                float [3,T,H,W]            rendered 2D pose
hand_prior          float [3,T,H,W]            garment-agnostic 3D hand renders (0 = no hand)
garment             float [3,Hg,Wg]            in-shop garment image
garment_mask        float [1,Hg,Wg] (optional) garment silhouette in the in-shop image
caption             str                        global caption
actions             list[{start,end,text}]     action captions, frame indices, end exclusive
interaction         float [T] in [0,1]         per-frame interaction weight
interaction_mask    float [1,T,H,W] (optional) where the interaction happens
counterfactual      float [3,T,H,W] (optional) the clip without the garment's response
counterfactual_mask float [1,T,H,W] (optional) where the counterfactual differs from the video by design
meta                dict                       sample id, source path, fps, original size
==================  =========================  ============================================

Missing optional conditions are absent keys, never zeros, so that a consumer can say what it needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

VIDEO_KEYS = ("video", "agnostic", "pose", "hand_prior", "counterfactual")  # RGB videos [3, T, H, W]
MASK_KEYS = ("agnostic_mask", "interaction_mask", "counterfactual_mask")  # binary videos [1, T, H, W]
IMAGE_KEYS = ("garment", "garment_mask")  # [3, Hg, Wg] and [1, Hg, Wg]
REQUIRED_KEYS = ("video", "agnostic", "agnostic_mask", "pose", "garment", "caption", "actions", "interaction", "meta")


class ContractError(ValueError):
    """A sample does not follow the batch contract."""


class SkippedSample:
    """Stands in for a sample that could not be loaded (see ``SkipBadSamples(replace=False)``); :func:`collate`
    leaves it out of the batch."""

    __slots__ = ("index", "clip", "error")

    def __init__(self, index: int, clip: str, error: str) -> None:
        self.index, self.clip, self.error = index, clip, error

    def __reduce__(self) -> tuple:  # crosses from DataLoader workers to the main process
        return (SkippedSample, (self.index, self.clip, self.error))

    def __repr__(self) -> str:
        return f"SkippedSample(index={self.index}, clip={self.clip!r})"


def _where(sample: Mapping[str, Any]) -> str:
    meta = sample.get("meta") or {}
    sid = meta.get("id", "?") if isinstance(meta, Mapping) else "?"
    return f"sample {sid!r}"


def reference_video(sample: Mapping[str, Any]) -> Any:
    """The video that sets a sample's length and size: ``video``, or ``agnostic`` for inference inputs without one."""
    return sample["video"] if "video" in sample else sample["agnostic"]


def validate_sample(sample: Mapping[str, Any], targets: bool = True) -> None:
    """Raise :class:`ContractError` naming the sample and key when ``sample`` breaks the contract; ``targets=False``
    (inference inputs) does not require the ground-truth ``video``."""
    where = _where(sample)
    required = REQUIRED_KEYS if targets else tuple(k for k in REQUIRED_KEYS if k != "video")
    missing = [k for k in required if k not in sample]
    if missing:
        raise ContractError(f"{where}: missing required key(s) {missing}; the contract requires {list(required)}")
    ref_key = "video" if "video" in sample else "agnostic"
    video = sample[ref_key]
    if not (torch.is_tensor(video) and video.ndim == 4 and video.shape[0] == 3):
        raise ContractError(f"{where}: '{ref_key}' must be a float tensor [3,T,H,W], got {_describe(video)}")
    _, t, h, w = video.shape
    for key in VIDEO_KEYS:
        if key in sample and key != ref_key:
            _expect_shape(sample[key], (3, t, h, w), key, where)
    for key in MASK_KEYS:
        if key in sample:
            _expect_shape(sample[key], (1, t, h, w), key, where)
    garment = sample["garment"]
    if not (torch.is_tensor(garment) and garment.ndim == 3 and garment.shape[0] == 3):
        raise ContractError(f"{where}: 'garment' must be a float tensor [3,Hg,Wg], got {_describe(garment)}")
    if "garment_mask" in sample:
        _expect_shape(sample["garment_mask"], (1, *garment.shape[1:]), "garment_mask", where)
    _expect_shape(sample["interaction"], (t,), "interaction", where)
    if not isinstance(sample["caption"], str):
        raise ContractError(f"{where}: 'caption' must be a str, got {type(sample['caption']).__name__}")
    for i, action in enumerate(sample["actions"]):
        for field in ("start", "end", "text"):
            if field not in action:
                raise ContractError(f"{where}: actions[{i}] lacks '{field}' (expected start, end, text)")
        if not 0 <= int(action["start"]) < int(action["end"]) <= t:
            raise ContractError(
                f"{where}: actions[{i}] span [{action['start']}, {action['end']}) is not inside [0, {t}) "
                "(end is exclusive and must be greater than start)"
            )


def _describe(x: Any) -> str:
    return f"tensor {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__


def _expect_shape(x: Any, shape: tuple[int, ...], key: str, where: str) -> None:
    if not torch.is_tensor(x) or tuple(x.shape) != tuple(shape):
        raise ContractError(f"{where}: '{key}' must have shape {list(shape)}, got {_describe(x)}")


def collate(samples: Sequence[Mapping[str, Any] | SkippedSample]) -> dict[str, Any] | None:
    """Stack tensors and keep strings, metadata and action lists as lists (one entry per sample).

    An optional key is kept only if every sample has it. :class:`SkippedSample` markers are left out (their clips
    are listed in ``batch["skipped"]``); a batch of markers only is ``None``.
    """
    if not samples:
        raise ContractError("collate got an empty list of samples")
    skipped = [s.clip for s in samples if isinstance(s, SkippedSample)]
    samples = [s for s in samples if not isinstance(s, SkippedSample)]
    if not samples:
        return None
    batch: dict[str, Any] = {}
    keys = set(samples[0])
    for s in samples[1:]:
        keys &= set(s)
    for key in sorted(keys):
        values = [s[key] for s in samples]
        if torch.is_tensor(values[0]):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ContractError(f"collate: '{key}' has different shapes across the batch: {sorted(shapes)}")
            batch[key] = torch.stack(values)
        else:
            batch[key] = list(values)
    if skipped:
        batch["skipped"] = skipped
    return batch


def interaction_from_actions(actions: Sequence[Mapping[str, Any]], num_frames: int) -> torch.Tensor:
    """Per-frame interaction weights ``[T]``: 1 inside any action span, 0 elsewhere."""
    weights = torch.zeros(num_frames)
    for a in actions:
        weights[int(a["start"]) : int(a["end"])] = 1.0
    return weights
