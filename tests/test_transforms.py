"""Resizing and temporal cropping of contract samples, alone and inside the manifest dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from itryon.config import instantiate
from itryon.data.contract import validate_sample
from itryon.data.synthetic import SyntheticTryOnDataset, write_split
from itryon.data.transforms import Resize, TemporalCrop


@pytest.fixture(scope="module")
def sample() -> dict:
    return SyntheticTryOnDataset("train", num_clips=4, seed=0)[1]


def test_resize_keeps_masks_binary_and_resizes_everything(sample: dict) -> None:
    out = Resize(24, 40, garment_height=20, garment_width=16)(sample)
    validate_sample(out)
    assert out["video"].shape == (3, 17, 24, 40) and out["agnostic_mask"].shape == (1, 17, 24, 40)
    assert out["garment"].shape == (3, 20, 16) and out["garment_mask"].shape == (1, 20, 16)
    for key in ("agnostic_mask", "interaction_mask", "garment_mask"):
        assert set(out[key].unique().tolist()) <= {0.0, 1.0}, key
    # antialiased bilinear downsampling by 2 of a constant image keeps it constant; a mean is preserved
    assert out["video"].mean().item() == pytest.approx(sample["video"].mean().item(), abs=0.02)
    assert out["meta"]["original_size"] == (48, 64)
    with pytest.raises(ValueError, match="garment_height and garment_width"):
        Resize(8, 8, garment_height=4)


def test_temporal_crop_remaps_action_spans_by_hand() -> None:
    t = 20
    sample = {
        "video": torch.arange(t).float().view(1, t, 1, 1).expand(3, t, 2, 2).clone(),
        "actions": [{"start": 5, "end": 9, "text": "a"}, {"start": 0, "end": 2, "text": "b"}],
        "interaction": torch.zeros(t),
        "meta": {"id": "x", "fps": 30.0},
    }
    torch.manual_seed(0)
    out = TemporalCrop(num_frames=5, stride=2, random=False)(sample)  # frames 0, 2, 4, 6, 8
    assert out["video"][0, :, 0, 0].tolist() == [0, 2, 4, 6, 8]
    # action [5, 9) covers source frames 6 and 8 -> kept frames 3, 4; action [0, 2) covers frame 0 -> kept 0
    assert [(a["start"], a["end"]) for a in out["actions"]] == [(3, 5), (0, 1)]
    assert out["interaction"].tolist() == [1, 0, 0, 1, 1]
    assert out["meta"]["fps"] == 15.0 and out["actions"][0]["start_s"] == pytest.approx(0.2)
    late = TemporalCrop(num_frames=3, stride=1, random=False)(sample)
    assert [a["text"] for a in late["actions"]] == ["b"]  # the action after the window is dropped
    starts = {int(TemporalCrop(5, stride=2)(sample)["video"][0, 0, 0, 0]) for _ in range(50)}
    assert len(starts) > 3 and max(starts) <= 11  # random windows, always inside the clip
    with pytest.raises(ValueError, match=r"clip 'x' has 20 frames; TemporalCrop\(11, stride=2\) needs 21"):
        TemporalCrop(11, stride=2)(sample)


def test_manifest_dataset_applies_transforms_from_config(tmp_path: Path) -> None:
    write_split(tmp_path, "val", 2, seed=1)
    ds = instantiate(
        {
            "_target_": "itryon.data.manifest.InteractiveManifestDataset",
            "manifest": str(tmp_path / "val.jsonl"),
            "transforms": [
                {"_target_": "itryon.data.transforms.TemporalCrop", "num_frames": 9, "stride": 2, "random": False},
                {"_target_": "itryon.data.transforms.Resize", "height": 32, "width": 32},
            ],
        }
    )
    item = ds[0]
    assert item["video"].shape == (3, 9, 32, 32) and item["interaction"].shape == (9,)
    assert item["meta"]["fps"] == 4.0
