"""Named evaluation protocols and the preprocessing each one implies.

VFID (``vfid_i3d``, ``vfid_resnext``):

- ``catv2ton`` reproduces the fid-metrics script behind the CatV2TON / MagicTryOn tables: frames as
  OpenCV decodes them (BGR), ``ToTensor`` to [0, 1], squashed to 224x224 (bilinear, antialias on as in
  torchvision >= 0.17 for tensors), scaled to [-1, 1], non-overlapping 10-frame clips (the remainder
  dropped), sample covariance (N - 1), one distance per (generated, reference) set.
- ``rgb`` is the same with frames in RGB order.

FVD (``fvd``): ``stylegan-v`` — uint8 clips of 16 frames fed to the TorchScript I3D detector with
``rescale=True, resize=True, return_features=True`` (400-d), biased covariance (divide by N), one
clip per video: generated clips from frame 0, reference clips at a seeded random offset.

See ``benchmarks/README.md`` for how these differ from the reference scripts in detail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from itryon.data.pixels import to_uint8


@dataclass(frozen=True)
class VFIDProtocol:
    """How videos become clips for the VFID feature networks."""

    name: str
    bgr: bool
    size: tuple[int, int] = (224, 224)
    clip_length: int = 10
    antialias: bool = True
    unbiased_covariance: bool = True

    def describe(self) -> dict:
        fields = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k != "name"}
        return {"protocol": self.name, **fields}


@dataclass(frozen=True)
class FVDProtocol:
    """How videos become clips for the FVD detector."""

    name: str = "stylegan-v"
    clip_length: int = 16
    unbiased_covariance: bool = False
    seed: int = 0

    def describe(self) -> dict:
        return {"protocol": self.name, **{k: v for k, v in asdict(self).items() if k != "name"}}


VFID_PROTOCOLS: dict[str, VFIDProtocol] = {
    "catv2ton": VFIDProtocol("catv2ton", bgr=True),
    "rgb": VFIDProtocol("rgb", bgr=False),
}


def vfid_protocol(name: str | VFIDProtocol) -> VFIDProtocol:
    """The VFID protocol called ``name``; a ``ValueError`` lists the available ones."""
    if isinstance(name, VFIDProtocol):
        return name
    if name not in VFID_PROTOCOLS:
        raise ValueError(f"unknown VFID protocol {name!r}; available: {sorted(VFID_PROTOCOLS)}")
    return VFID_PROTOCOLS[name]


def vfid_clips(videos: torch.Tensor, protocol: VFIDProtocol) -> torch.Tensor:
    """Videos ``(B, 3, T, H, W)`` in [-1, 1] -> clips ``(B * (T // L), 3, L, h, w)`` in [-1, 1].

    Clips of one video are consecutive along the first dimension; videos shorter than one clip give none.
    """
    b, c, t, h, w = videos.shape
    n = t // protocol.clip_length
    if n == 0:
        return videos.new_zeros(0, c, protocol.clip_length, *protocol.size)
    frames = videos[:, :, : n * protocol.clip_length].float().add(1.0).div(2.0)  # (B, 3, T', H, W) in [0, 1]
    if protocol.bgr:
        frames = frames.flip(1)
    frames = frames.permute(0, 2, 1, 3, 4).reshape(-1, c, h, w)  # (B*T', 3, H, W)
    if (h, w) != tuple(protocol.size):
        frames = F.interpolate(
            frames, size=protocol.size, mode="bilinear", align_corners=False, antialias=protocol.antialias
        )
    frames = frames.mul(2.0).sub(1.0)
    clips = frames.reshape(b * n, protocol.clip_length, c, *protocol.size)  # (N, L, 3, h, w)
    return clips.permute(0, 2, 1, 3, 4).contiguous()  # (N, 3, L, h, w)


def fvd_clip(videos: torch.Tensor, protocol: FVDProtocol, offsets: torch.Tensor) -> torch.Tensor:
    """One uint8 clip ``(B, 3, L, H, W)`` per video ``(B, 3, T, H, W)`` in [-1, 1], starting at ``offsets[b]``."""
    b, _, t, _, _ = videos.shape
    length = protocol.clip_length
    if t < length:
        raise ValueError(f"FVD ({protocol.name}) needs videos of at least {length} frames, got {t}")
    index = offsets.to(videos.device).view(b, 1) + torch.arange(length, device=videos.device).view(1, length)  # (B, L)
    clips = torch.stack([videos[i, :, index[i]] for i in range(b)])  # (B, 3, L, H, W)
    return to_uint8(clips)
