"""VFID and SSIM from one process equal those from two gloo processes that split the videos."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from distributed_helpers import spawn_two

from itryon.metrics.paired import VideoSSIM
from itryon.metrics.protocols import VFIDProtocol
from itryon.metrics.vfid import VideoFrechetDistance

PROTOCOL = VFIDProtocol("rgb", bgr=False, size=(16, 16), clip_length=5)


class ChannelStats(torch.nn.Module):
    num_features = 6

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return torch.cat([clips.mean(dim=(2, 3, 4)), clips.std(dim=(2, 3, 4))], dim=1)


def _data():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(8, 3, 10, 16, 16, generator=g) * 2 - 1
    preds = (target + 0.3 * torch.randn(target.shape, generator=g)).clamp(-1, 1)
    return preds, target


def _compute(preds: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    vfid, ssim = VideoFrechetDistance(ChannelStats(), PROTOCOL), VideoSSIM()
    for i in range(0, len(preds), 2):
        vfid.update(preds[i : i + 2], target[i : i + 2])
        ssim.update(preds[i : i + 2], target[i : i + 2])
    return float(vfid.compute()), float(ssim.compute())


def _worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        preds, target = _data()
        # an uneven split: rank 0 gets 6 videos, rank 1 gets 2
        part = slice(0, 6) if rank == 0 else slice(6, 8)
        torch.save(_compute(preds[part], target[part]), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_two_gloo_processes_match_one(tmp_path):
    single = _compute(*_data())
    spawn_two(_worker, str(tmp_path))
    ranks = {r: torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)}
    for rank in (0, 1):
        assert ranks[rank][0] == pytest.approx(single[0], rel=1e-9)
        assert ranks[rank][1] == pytest.approx(single[1], abs=1e-9)
