"""Paired per-frame metrics (SSIM, PSNR, LPIPS), averaged over frames then videos, with windows and masks.

``window="interaction"`` keeps only frames inside an action (``interaction > 0``), and ``masked=True``
additionally averages each frame's score map over ``interaction_mask`` pixels: interactions cover
5-10% of frames, so whole-video averages hide them. Videos with no selected frame (no action, or an
empty mask) do not count.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import Literal

import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.functional.image import structural_similarity_index_measure

from itryon.metrics.lpips_net import build_lpips

Window = Literal["all", "interaction"]


class PairedVideoMetric(Metric):
    """Mean over videos of the mean over (selected) frames of a per-frame score."""

    is_differentiable = False
    full_state_update = False
    higher_is_better: bool

    def __init__(self, window: Window = "all", masked: bool = False, frames_per_batch: int = 32, **kwargs) -> None:
        super().__init__(**kwargs)
        if window not in ("all", "interaction"):
            raise ValueError(f"window must be 'all' or 'interaction', got {window!r}")
        self.window, self.masked, self.frames_per_batch = window, masked, frames_per_batch
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @abstractmethod
    def frame_scores(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Scores ``(N,)`` of frames ``(N, 3, H, W)`` in [-1, 1]; ``mask`` ``(N, 1, H, W)`` weights pixels."""

    def update(
        self,
        preds: torch.Tensor,
        target: torch.Tensor,
        interaction: torch.Tensor | None = None,
        interaction_mask: torch.Tensor | None = None,
    ) -> None:
        """``preds``/``target`` ``(B, 3, T, H, W)`` in [-1, 1]; ``interaction`` ``(B, T)``; ``interaction_mask`` ``(B, 1, T, H, W)``."""
        if preds.shape != target.shape:
            raise ValueError(
                f"{type(self).__name__}: preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape"
            )
        b, _, t, h, w = preds.shape
        keep = torch.ones(b, t, dtype=torch.bool, device=preds.device)  # (B, T)
        if self.window == "interaction":
            if interaction is None:
                raise ValueError(
                    f"{type(self).__name__} (window='interaction') needs the batch key 'interaction' (B, T)"
                )
            keep &= interaction.to(preds.device) > 0
        if self.masked:
            if interaction_mask is None:
                raise ValueError(
                    f"{type(self).__name__} (masked) needs the batch key 'interaction_mask' (B, 1, T, H, W)"
                )
            keep &= interaction_mask.to(preds.device).sum(dim=(1, 3, 4)) > 0
        video_idx, frame_idx = keep.nonzero(as_tuple=True)
        if video_idx.numel() == 0:
            return
        scores = []
        for vi, fi in zip(video_idx.split(self.frames_per_batch), frame_idx.split(self.frames_per_batch)):
            p, g = preds[vi, :, fi].float(), target[vi, :, fi].float()  # (N, 3, H, W)
            m = interaction_mask[vi, :, fi].to(preds.device).float() if self.masked else None  # (N, 1, H, W)
            scores.append(self.frame_scores(p, g, m).to(torch.float64))
        per_frame = torch.cat(scores)
        sums = torch.zeros(b, dtype=torch.float64, device=preds.device).index_add_(0, video_idx, per_frame)
        counts = torch.zeros(b, dtype=torch.float64, device=preds.device).index_add_(
            0, video_idx, torch.ones_like(per_frame)
        )
        has = counts > 0
        self.total += (sums[has] / counts[has]).sum()
        self.count += int(has.sum())

    def compute(self) -> torch.Tensor:
        if int(self.count) == 0:
            return torch.tensor(float("nan"), dtype=torch.float64, device=self.total.device)
        return self.total / self.count

    def describe(self) -> dict:
        return {"window": self.window, "masked": self.masked, "average": "frames then videos"}


def _masked_mean(maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``maps`` ``(N, 1, h, w)`` weighted by ``mask`` ``(N, 1, H, W)`` (resized nearest if sizes differ)."""
    if mask.shape[-2:] != maps.shape[-2:]:
        mask = F.interpolate(mask, size=maps.shape[-2:], mode="nearest")
    return (maps * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1e-12)


class VideoSSIM(PairedVideoMetric):
    """SSIM per frame: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, frames mapped to [0, 1] (data range 1).

    ``border="valid"`` averages the map over pixels whose window lies inside the frame: equal to
    ``skimage.metrics.structural_similarity(..., data_range=1, channel_axis=-1, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)``. skimage's default ``use_sample_covariance=True`` divides the
    local variances by ``N - 1`` instead of ``N`` and gives slightly different values. ``border="reflect"``
    averages over the whole reflect-padded map, as ``torchmetrics``' SSIM (and the CatV2TON evaluation
    script) does.
    """

    higher_is_better = True

    def __init__(self, border: Literal["valid", "reflect"] = "valid", **kwargs) -> None:
        super().__init__(**kwargs)
        if border not in ("valid", "reflect"):
            raise ValueError(f"border must be 'valid' or 'reflect', got {border!r}")
        self.border = border

    def score_maps(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _, full = structural_similarity_index_measure(
            pred.add(1).div(2), target.add(1).div(2), gaussian_kernel=True, sigma=1.5, kernel_size=11,
            data_range=1.0, k1=0.01, k2=0.03, reduction="none", return_full_image=True,
        )  # fmt: skip
        return full.mean(1, keepdim=True)  # (N, 1, H, W)

    def frame_scores(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        maps = self.score_maps(pred, target)
        if self.border == "valid":
            r = 5  # radius of the 11-tap window
            maps = maps[..., r:-r, r:-r]
            mask = mask[..., r:-r, r:-r] if mask is not None else None
        return maps.flatten(1).mean(1) if mask is None else _masked_mean(maps, mask)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "window_size": 11,
            "sigma": 1.5,
            "k1": 0.01,
            "k2": 0.03,
            "data_range": "[0,1]",
            "border": self.border,
        }


class VideoPSNR(PairedVideoMetric):
    """PSNR per frame on [0, 1] frames, ``10 log10(1 / MSE)``; the MSE is floored at 1e-10 (100 dB) for identical frames."""

    higher_is_better = True

    def frame_scores(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # hand-written: torchmetrics' PSNR takes no pixel weights, which the masked variant needs
        sq = (pred - target).div(2).square().mean(1, keepdim=True)  # (N, 1, H, W), [0,1] scale
        mse = sq.flatten(1).mean(1) if mask is None else _masked_mean(sq, mask)
        return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))

    def describe(self) -> dict:
        return {**super().describe(), "data_range": "[0,1]", "mse_floor": 1e-10}


class VideoLPIPS(PairedVideoMetric):
    """LPIPS v0.1 per frame with the ``lpips`` package's network (``net``: alex, vgg or squeeze)."""

    higher_is_better = False

    def __init__(
        self,
        net: str = "alex",
        weights_dir: str | os.PathLike | None = None,
        lpips_model: torch.nn.Module | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.net_name = net
        self.lpips = lpips_model if lpips_model is not None else build_lpips(net, weights_dir, spatial=self.masked)
        if bool(self.lpips.spatial) != self.masked:
            raise ValueError(
                f"VideoLPIPS(masked={self.masked}) needs an LPIPS model with spatial={self.masked}, got spatial={self.lpips.spatial}"
            )

    @torch.no_grad()
    def frame_scores(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        self.lpips.eval()
        out = self.lpips(pred, target)  # (N, 1, 1, 1), or (N, 1, H, W) when spatial
        return out.flatten(1).mean(1) if mask is None else _masked_mean(out, mask)

    def describe(self) -> dict:
        return {**super().describe(), "net": self.net_name, "version": "0.1", "input": "[-1,1]"}
