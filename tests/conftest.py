"""Shared fixtures: batches of synthetic clips and random contract-shaped batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session")
def synthetic_batch() -> dict[str, Any]:
    """The first two clips of the synthetic train split (seed 0), collated: 17 frames of 48 x 64."""
    from itryon.data.contract import collate
    from itryon.data.synthetic import SyntheticTryOnDataset

    clips = SyntheticTryOnDataset(split="train", num_clips=4, seed=0)
    return collate([clips[i] for i in range(2)])


@pytest.fixture(scope="session")
def synthetic_batch_of_four() -> dict[str, Any]:
    """The first four clips of the synthetic train split (seed 0), collated."""
    from itryon.data.contract import collate
    from itryon.data.synthetic import SyntheticTryOnDataset

    clips = SyntheticTryOnDataset(split="train", num_clips=4, seed=0)
    return collate([clips[i] for i in range(4)])


def random_batch(
    size: Sequence[int] = (2, 9, 8, 8),
    *,
    seed: int = 0,
    garment: Sequence[int] = (12, 10),
    hand_free_frames: int = 5,
    handless: Sequence[int] = (),
    actions: Sequence[Sequence[dict[str, Any]]] | None = None,
    captions: Sequence[str] = ("a person in a striped shirt", "someone in a dotted dress"),
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """A batch with the contract's condition keys, random values drawn from ``seed``.

    ``size`` is ``(B, T, H, W)``; the hand prior is zero (no hand) in the first ``hand_free_frames`` frames and
    for the samples in ``handless``. ``extra`` adds ``depth`` ``(B, 1, T, H, W)`` and/or ``interaction`` ``(B, T)``
    (zeros).
    """
    b, t, h, w = size
    g = torch.Generator().manual_seed(seed)
    hands = torch.rand(b, 3, t, h, w, generator=g)
    hands[:, :, :hand_free_frames] = 0.0
    for i in handless:
        hands[i] = 0.0
    batch: dict[str, Any] = {
        "video": torch.rand(b, 3, t, h, w, generator=g) * 2 - 1,
        "agnostic": torch.rand(b, 3, t, h, w, generator=g) * 2 - 1,
        "agnostic_mask": (torch.rand(b, 1, t, h, w, generator=g) > 0.5).float(),
        "pose": torch.rand(b, 3, t, h, w, generator=g) * 2 - 1,
        "hand_prior": hands,
    }
    if "depth" in extra:
        batch["depth"] = torch.rand(b, 1, t, h, w, generator=g)
    batch["garment"] = torch.rand(b, 3, *garment, generator=g) * 2 - 1
    batch["caption"] = list(captions[:b])
    batch["actions"] = [list(a) for a in actions] if actions is not None else [[] for _ in range(b)]
    if "interaction" in extra:
        batch["interaction"] = torch.zeros(b, t)
    return batch


@pytest.fixture(scope="session")
def make_batch() -> Callable[..., dict[str, Any]]:
    """:func:`random_batch`, for tests that build their own condition batches."""
    return random_batch
