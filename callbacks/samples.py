"""Writes validation samples a person can look at: side-by-side MP4s and a PNG grid of frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from PIL import Image

from itryon.data.video_io import to_frames, write_video
from itryon.io_utils import atomic_path

# columns of the side-by-side views: (batch key or "pred", title)
PANELS = (("agnostic", "condition"), ("pred", "prediction"), ("video", "ground truth"))


class SampleVideos(L.Callback):
    """After each sampling validation epoch, writes ``samples/epoch{E}_step{S}_{i}.mp4`` (condition |
    prediction | ground truth side by side) and ``.png`` (a grid: rows are frames, columns the same panels).

    Uses the ``pred`` the LightningModule returns from ``validation_step``; batches without it are ignored.
    """

    def __init__(
        self,
        max_videos: int = 2,
        grid_frames: int = 4,
        fps: float = 8.0,
        folder: str = "samples",
        extra_panels: list[str] | None = None,
    ) -> None:
        self.max_videos = max_videos
        self.grid_frames = grid_frames
        self.fps = fps
        self.folder = folder
        self.panels = list(PANELS[:1]) + [(k, k) for k in (extra_panels or [])] + list(PANELS[1:])
        self._pending: list[dict[str, torch.Tensor]] = []
        self.written: list[Path] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending = []

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if trainer.sanity_checking or not isinstance(outputs, dict) or outputs.get("pred") is None:
            return
        pred = outputs["pred"]
        for i in range(pred.shape[0]):
            if len(self._pending) >= self.max_videos:
                return
            item = {"pred": pred[i].detach().cpu()}
            for key, _ in self.panels:
                if key != "pred" and key in batch and torch.is_tensor(batch[key]):
                    item[key] = batch[key][i].detach().cpu()
            self._pending.append(item)

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self._pending:
            return
        out = Path(trainer.default_root_dir) / self.folder
        stem = f"epoch{trainer.current_epoch:03d}_step{trainer.global_step:06d}"
        for i, item in enumerate(self._pending):
            panels = [item[k] for k, _ in self.panels if k in item]  # each (3, T, H, W)
            side = torch.cat(panels, dim=-1)  # (3, T, H, W * P)
            self.written.append(write_video(out / f"{stem}_{i}.mp4", to_frames(side), fps=self.fps))
            self.written.append(save_grid(panels, out / f"{stem}_{i}.png", self.grid_frames))
        self._pending = []


def save_grid(panels: list[torch.Tensor], path: Path, num_frames: int) -> Path:
    """PNG with one row per sampled frame and one column per panel ``(3, T, H, W)`` in [-1, 1]."""
    t = panels[0].shape[1]
    idx = torch.linspace(0, t - 1, min(num_frames, t)).round().long()
    rows = [torch.cat([p[:, i] for p in panels], dim=-1) for i in idx]  # each (3, H, W * P)
    grid = torch.cat(rows, dim=-2).unsqueeze(1)  # (3, 1, H * R, W * P)
    with atomic_path(path) as tmp:
        Image.fromarray(to_frames(grid)[0].numpy()).save(tmp, format="PNG")
    return path
