"""Video IO, the batch contract's validation and collate, and skipping bad samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from itryon.data.contract import ContractError, collate, interaction_from_actions, validate_sample
from itryon.data.datamodule import SkipBadSamples, TryOnDataModule
from itryon.data.video_io import VideoIOError, read_video, to_float, to_frames, video_info, write_video


def make_sample(t: int = 5, h: int = 8, w: int = 12, actions=None, sid: str = "s0") -> dict:
    actions = actions if actions is not None else [{"start": 1, "end": 3, "text": "lifts the hem"}]
    return {
        "video": torch.rand(3, t, h, w) * 2 - 1,
        "agnostic": torch.zeros(3, t, h, w),
        "agnostic_mask": torch.ones(1, t, h, w),
        "pose": torch.zeros(3, t, h, w),
        "hand_prior": torch.zeros(3, t, h, w),
        "garment": torch.zeros(3, 6, 4),
        "caption": "a person",
        "actions": actions,
        "interaction": interaction_from_actions(actions, t),
        "meta": {"id": sid, "fps": 8.0},
    }


def test_lossless_mp4_and_png_folders_round_trip_exactly(tmp_path: Path) -> None:
    frames = torch.randint(0, 256, (4, 10, 14, 3), dtype=torch.uint8)
    assert torch.equal(read_video(write_video(tmp_path / "a.mp4", frames, fps=12, lossless=True)), frames)
    assert video_info(tmp_path / "a.mp4") == {"frames": 4, "height": 10, "width": 14, "fps": 12.0}
    mask = (torch.rand(4, 9, 7, 1) > 0.5).to(torch.uint8) * 255
    assert torch.equal(read_video(write_video(tmp_path / "mask", mask)), mask)


def test_lossy_mp4_is_close_on_smooth_content(tmp_path: Path) -> None:
    ramp = torch.linspace(0, 255, 32).round().to(torch.uint8)
    frames = ramp.view(1, 1, 32, 1).expand(3, 16, 32, 3).contiguous()
    back = read_video(write_video(tmp_path / "b.mp4", frames))
    assert back.shape == frames.shape
    assert (back.float() - frames.float()).abs().mean() < 4.0


def test_float_uint8_conversions_invert() -> None:
    frames = torch.randint(0, 256, (2, 3, 4, 3), dtype=torch.uint8)
    video = to_float(frames)
    assert video.shape == (3, 2, 3, 4) and video.min() >= -1 and video.max() <= 1
    assert torch.equal(to_frames(video), frames)


def test_video_io_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(VideoIOError, match="missing.mp4: no such video"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(VideoIOError, match="expected uint8 frames"):
        write_video(tmp_path / "x.mp4", torch.zeros(2, 4, 4, 3))
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(VideoIOError, match="bad.mp4: cannot decode"):
        read_video(tmp_path / "bad.mp4")


def test_validate_sample_names_sample_and_key() -> None:
    validate_sample(make_sample())
    bad = make_sample(sid="clip7")
    bad["pose"] = torch.zeros(3, 4, 8, 12)
    with pytest.raises(ContractError, match=r"sample 'clip7': 'pose' must have shape \[3, 5, 8, 12\]"):
        validate_sample(bad)
    bad = make_sample(actions=[{"start": 3, "end": 9, "text": "x"}], sid="clip8")
    bad["interaction"] = torch.zeros(5)
    with pytest.raises(ContractError, match=r"sample 'clip8': actions\[0\] span \[3, 9\)"):
        validate_sample(bad)
    bad = make_sample()
    del bad["caption"]
    with pytest.raises(ContractError, match="missing required key"):
        validate_sample(bad)


def test_collate_keeps_action_lists_and_common_keys() -> None:
    a = make_sample(actions=[])
    b = make_sample(actions=[{"start": 0, "end": 2, "text": "x"}, {"start": 3, "end": 5, "text": "y"}])
    b["counterfactual"] = torch.zeros(3, 5, 8, 12)  # only in one sample: dropped
    batch = collate([a, b])
    assert batch["video"].shape == (2, 3, 5, 8, 12)
    assert batch["actions"] == [[], b["actions"]] and "action_mask" not in batch
    assert batch["caption"] == ["a person", "a person"]
    assert "counterfactual" not in batch
    assert batch["interaction"][1].tolist() == [1, 1, 0, 1, 1]


class Flaky(Dataset):
    def __init__(self, bad: set[int]):
        self.bad = bad

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> dict:
        if i in self.bad:
            raise OSError(f"corrupt file for clip {i}")
        return make_sample(sid=f"c{i}")


def test_a_bad_sample_is_skipped_and_reported() -> None:
    ds = SkipBadSamples(Flaky({2}))
    assert ds[2]["meta"]["id"] == "c3"
    assert ds.skipped == [(2, "OSError: corrupt file for clip 2")]
    with pytest.raises(RuntimeError, match="3 consecutive bad samples"):
        SkipBadSamples(Flaky({0, 1, 2}), max_consecutive=3)[0]


def test_datamodule_serves_batches_and_names_missing_split() -> None:
    dm = TryOnDataModule(train=Flaky({1}), batch_size=2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (2, 3, 5, 8, 12)
    with pytest.raises(ValueError, match="no 'val' dataset configured"):
        dm.val_dataloader()
