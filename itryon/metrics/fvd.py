"""FVD under the StyleGAN-V protocol: the TorchScript Kinetics I3D detector on 16-frame uint8 clips.

One clip per video: generated videos from frame 0, reference videos at a random offset drawn from a
generator seeded with the protocol's seed (offsets follow the order videos arrive in, so a different
split across ranks draws different offsets). Features are the detector's 400-d outputs with
``rescale=True, resize=True, return_features=True`` on uint8 clips, as StyleGAN-V calls it (the detector
maps [0, 255] to [-1, 1] itself and resizes to 224x224); the covariance is biased (divide by N).
"""

from __future__ import annotations

import os

import torch

from itryon.metrics.protocols import FVDProtocol, fvd_clip
from itryon.metrics.vfid import FrechetClipMetric
from itryon.metrics.weights import find_weights


def load_fvd_detector(
    weights_dir: str | os.PathLike | None = None, filename: str = "i3d_torchscript.pt"
) -> torch.jit.ScriptModule:
    """The TorchScript I3D detector from the weights folder (the one file read with ``torch.jit.load``)."""
    return torch.jit.load(str(find_weights(filename, weights_dir)), map_location="cpu").eval()


class FrechetVideoDistance(FrechetClipMetric):
    """FVD with a StyleGAN-V style detector ``detector(videos_uint8, rescale=, resize=, return_features=)``."""

    def __init__(
        self,
        detector: torch.nn.Module,
        protocol: FVDProtocol | None = None,
        num_features: int = 400,
        clips_per_batch: int = 8,
        reset_real_features: bool = True,
        **kwargs,
    ) -> None:
        self.protocol = protocol or FVDProtocol()
        super().__init__(num_features, self.protocol.unbiased_covariance, reset_real_features, **kwargs)
        self.detector = detector
        self.clips_per_batch = clips_per_batch
        self._generator = torch.Generator().manual_seed(self.protocol.seed)

    def reset(self) -> None:
        super().reset()
        self._generator.manual_seed(self.protocol.seed)

    @torch.no_grad()
    def features(self, videos: torch.Tensor, real: bool) -> torch.Tensor:
        b, _, t = videos.shape[:3]
        if real:
            offsets = (
                torch.randint(0, t - self.protocol.clip_length + 1, (b,), generator=self._generator)
                if t >= self.protocol.clip_length
                else torch.zeros(b, dtype=torch.long)
            )
        else:
            offsets = torch.zeros(b, dtype=torch.long)
        clips = fvd_clip(videos, self.protocol, offsets)  # (B, 3, 16, H, W) uint8
        out = [
            self.detector(c, rescale=True, resize=True, return_features=True).float()
            for c in clips.split(self.clips_per_batch)
        ]
        return torch.cat(out)

    def describe(self) -> dict:
        return {"network": "i3d_torchscript", **self.protocol.describe()}
