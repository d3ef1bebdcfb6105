"""The trivial reference predictions: copy the input, fill the masked region with the garment's mean colour."""

from __future__ import annotations

import pytest
import torch

from itryon.metrics.references import copy_input, garment_mean_colour, garment_mean_fill


def _batch() -> dict:
    agnostic = torch.full((1, 3, 2, 2, 2), -0.5)
    mask = torch.zeros(1, 1, 2, 2, 2)
    mask[..., 0, :] = 1.0  # the top row of every frame is generated
    garment = torch.zeros(1, 3, 2, 2)
    garment[:, 0] = torch.tensor([[1.0, 0.0], [0.0, -1.0]])  # red channel, garment pixels at (0,0) and (1,1)
    garment[:, 1] = 0.4
    garment_mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    return {
        "agnostic": agnostic,
        "agnostic_mask": mask,
        "garment": garment,
        "garment_mask": garment_mask,
        "meta": [{"id": "c0"}],
    }


def test_copy_input_is_the_agnostic_video() -> None:
    batch = _batch()
    out = copy_input(batch)
    assert torch.equal(out, batch["agnostic"]) and out.data_ptr() != batch["agnostic"].data_ptr()


def test_mean_colour_is_taken_over_the_garment_mask_only() -> None:
    batch = _batch()
    assert garment_mean_colour(batch)[0].tolist() == pytest.approx([0.0, 0.4, 0.0])  # (1 + -1) / 2 on red
    del batch["garment_mask"]
    assert garment_mean_colour(batch)[0].tolist() == pytest.approx([0.0, 0.4, 0.0])  # whole image: (1 + 0 + 0 - 1) / 4


def test_fill_replaces_the_masked_region_and_keeps_the_rest() -> None:
    batch = _batch()
    batch["garment"][:, 2] = 0.8
    out = garment_mean_fill(batch)
    inside, outside = out[..., 0, :], out[..., 1, :]
    assert inside[0, :, 0, 0].tolist() == pytest.approx([0.0, 0.4, 0.8])
    assert torch.all(outside == -0.5)


def test_empty_garment_mask_is_an_error_naming_the_clip() -> None:
    batch = _batch()
    batch["garment_mask"] = torch.zeros_like(batch["garment_mask"])
    with pytest.raises(ValueError, match="c0"):
        garment_mean_fill(batch)
