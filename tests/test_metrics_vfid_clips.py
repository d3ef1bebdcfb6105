"""VFID clip selection: every clip, or the two selections of the public reference scripts."""

from __future__ import annotations

import pytest
import torch

from itryon.metrics.clip_selection import SORTED_MAX_VIDEOS, clip_indices, usable_frames
from itryon.metrics.protocols import VFIDProtocol, vfid_clips
from itryon.metrics.registry import metric_spec
from itryon.metrics.vfid import VideoFrechetDistance

PROTOCOL = VFIDProtocol("rgb", bgr=False, size=(8, 8))


class ClipStats(torch.nn.Module):
    """Features: per-channel mean and std of a clip, plus its mean over the first frame (which clip it is)."""

    num_features = 9

    def forward(self, clips: torch.Tensor) -> torch.Tensor:  # (N, 3, L, h, w) -> (N, 9)
        return torch.cat([clips.mean(dim=(2, 3, 4)), clips.std(dim=(2, 3, 4)), clips[:, :, 0].mean(dim=(2, 3))], dim=1)


def _videos(n: int, frames: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, frames, 6, 6, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # (B, 3, T, H, W)


def _fake_statistics(metric: VideoFrechetDistance) -> tuple[int, torch.Tensor]:
    return int(metric.fake_n), metric.fake_sum.clone()


def test_clip_indices():
    assert clip_indices("all", 0, 2, 3) == [0, 1, 2, 3, 4, 5]
    assert clip_indices("reference", 0, 2, 3) == [0, 0, 0, 3, 4, 5]  # the first video: its first clip, three times
    assert clip_indices("reference", 5, 2, 3) == [0, 1, 2, 3, 4, 5]  # later batches: every clip
    assert clip_indices("reference_sorted", SORTED_MAX_VIDEOS - 1, 2, 2) == [0, 1]  # the 174th video is left out
    assert (usable_frames("reference_sorted", 700), usable_frames("reference", 700)) == (600, 700)
    with pytest.raises(
        ValueError, match=r"unknown VFID clip selection 'first'; available: \['all', 'reference', 'reference_sorted'\]"
    ):
        clip_indices("first", 0, 1, 1)


def test_reference_selection_repeats_the_first_clip_of_the_first_video():
    gen = _videos(3, 25, seed=0)  # 2 clips per video, 5 frames dropped
    selected = VideoFrechetDistance(ClipStats(), PROTOCOL, clip_selection="reference")
    selected.update(gen[:2], None)
    selected.update(gen[2:], None)  # a later batch: its first video is not the set's first
    clips = vfid_clips(gen, PROTOCOL)  # (6, 3, 10, 8, 8)
    by_hand = ClipStats()(clips[[0, 0, 2, 3, 4, 5]]).double()
    n, total = _fake_statistics(selected)
    assert n == 6 and torch.allclose(total, by_hand.sum(0))
    every = VideoFrechetDistance(ClipStats(), PROTOCOL)
    every.update(gen, None)
    assert not torch.allclose(every.fake_sum, total)  # the second clip of the first video differs
    selected.reset()
    selected.update(gen[2:], None)  # after a reset the first video is the first again
    assert torch.allclose(selected.fake_sum, ClipStats()(clips[[4, 4]]).double().sum(0))


def test_reference_sorted_selection_reads_173_videos_and_600_frames():
    long = _videos(1, 630, seed=1)  # 63 clips, of which 60 lie in frames [0, 600)
    m = VideoFrechetDistance(ClipStats(), PROTOCOL, clip_selection="reference_sorted")
    m.update(long, long)
    assert int(m.fake_n) == 60 and int(m.real_n) == 60
    short = _videos(SORTED_MAX_VIDEOS, 10, seed=2)  # one clip each; the set already has one video
    m.update(short, None)
    assert int(m.fake_n) == 60 + SORTED_MAX_VIDEOS - 1
    m.update(short[:1], None)  # beyond the 173rd video nothing is read
    assert int(m.fake_n) == 60 + SORTED_MAX_VIDEOS - 1


def test_registry_cli_and_description_carry_the_selection():
    import argparse

    from itryon.cli import evaluate

    assert (
        "clip_selection" in metric_spec("vfid_i3d").options()
        and "clip_selection" in metric_spec("vfid_resnext").options()
    )
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(["--pred", "p", "--vfid-clips", "reference"])
    assert evaluate._metric_options("vfid_resnext", args) == {"protocol": "catv2ton", "clip_selection": "reference"}
    assert evaluate._metric_options("fvd", args) == {}
    m = VideoFrechetDistance(ClipStats(), PROTOCOL, clip_selection="reference_sorted")
    assert m.describe()["clip_selection"] == "reference_sorted"
    with pytest.raises(ValueError, match="unknown VFID clip selection"):
        VideoFrechetDistance(ClipStats(), PROTOCOL, clip_selection="sorted")
