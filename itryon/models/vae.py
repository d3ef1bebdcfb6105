"""Video autoencoders with one interface: ``encode(video) -> latents``, ``decode(latents) -> video``.

* ``PixelVAE``: an exact, parameter-free "VAE" for the synthetic world (space-to-depth + Wan-style causal
  temporal folding), so CPU runs need no pretrained autoencoder.
* ``WanVAE``: diffusers' ``AutoencoderKLWan`` from a local folder, with Wan's per-channel latent
  normalisation applied here and nowhere else.

Both take video ``(B, 3, T, H, W)`` in [-1, 1] with ``T = 1 + k * temporal_compression`` (any ``T`` when the
temporal compression is 1) and give latents ``(B, latent_channels, 1 + k, H / s, W / s)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def _check_frames(num_frames: int, temporal_compression: int) -> int:
    if temporal_compression > 1 and (num_frames - 1) % temporal_compression != 0:
        raise ValueError(
            f"a causal video VAE with temporal compression {temporal_compression} needs "
            f"1 + {temporal_compression}k frames, got {num_frames}"
        )
    return 1 + (num_frames - 1) // temporal_compression if temporal_compression > 1 else num_frames


class PixelVAE(nn.Module):
    """Identity autoencoder: pixels folded into channels, exactly invertible.

    Spatially, each ``s x s`` patch becomes channels. Temporally, like Wan's causal VAE, the first frame forms
    latent frame 0 on its own (repeated ``t`` times to fill the channels) and every following group of ``t``
    frames forms one latent frame. ``decode`` averages the first frame's copies, so ``decode(encode(x)) == x``.
    Channel order: ``(rgb, time-in-group, row-in-patch, column-in-patch)``.
    """

    def __init__(self, spatial_compression: int = 4, temporal_compression: int = 4, image_channels: int = 3):
        super().__init__()
        if spatial_compression < 1 or temporal_compression < 1:
            raise ValueError(
                f"compressions must be >= 1, got spatial {spatial_compression}, temporal {temporal_compression}"
            )
        self.spatial_compression = spatial_compression
        self.temporal_compression = temporal_compression
        self.image_channels = image_channels
        self.latent_channels = image_channels * temporal_compression * spatial_compression**2

    def latent_frames(self, num_frames: int) -> int:
        return _check_frames(num_frames, self.temporal_compression)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = video.shape
        s, t = self.spatial_compression, self.temporal_compression
        if channels != self.image_channels:
            raise ValueError(f"video must have {self.image_channels} channels, got shape {tuple(video.shape)}")
        if height % s or width % s:
            raise ValueError(f"video height/width ({height}, {width}) must be divisible by spatial_compression {s}")
        latent_frames = self.latent_frames(frames)
        if t > 1:
            video = torch.cat([video[:, :, :1].expand(-1, -1, t, -1, -1), video[:, :, 1:]], dim=2)  # (B, C, t F, H, W)
        x = video.reshape(batch, channels, latent_frames, t, height // s, s, width // s, s)
        x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)  # (B, C, t, s, s, F, h, w)
        return x.reshape(batch, self.latent_channels, latent_frames, height // s, width // s)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        batch, channels, latent_frames, h, w = latents.shape
        s, t = self.spatial_compression, self.temporal_compression
        if channels != self.latent_channels:
            raise ValueError(f"latents must have {self.latent_channels} channels, got shape {tuple(latents.shape)}")
        x = latents.reshape(batch, self.image_channels, t, s, s, latent_frames, h, w)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)  # (B, C, F, t, h, s, w, s)
        video = x.reshape(batch, self.image_channels, latent_frames * t, h * s, w * s)
        if t > 1:
            first = video[:, :, :t].mean(dim=2, keepdim=True)
            video = torch.cat([first, video[:, :, t:]], dim=2)
        return video


def _vae_folder(path: Path) -> Path:
    if (path / "config.json").is_file():
        return path
    if (path / "vae" / "config.json").is_file():
        return path / "vae"
    raise FileNotFoundError(
        f"no AutoencoderKLWan config.json in {path} (nor in {path / 'vae'}); expected a diffusers Wan VAE folder"
    )


class WanVAE(nn.Module):
    """Frozen Wan2.1 VAE (diffusers ``AutoencoderKLWan``) from a local folder, returning normalised latents.

    Latents are ``(z - latents_mean) / latents_std`` with the per-channel statistics from the VAE config.
    ``sample=False`` encodes to the posterior mode (deterministic), ``True`` samples it.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        dtype: torch.dtype = torch.float32,
        sample: bool = False,
        spatial_compression: int | None = None,
        temporal_compression: int | None = None,
    ):
        super().__init__()
        from diffusers import AutoencoderKLWan

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Wan VAE folder {path} does not exist")
        self.vae = AutoencoderKLWan.from_pretrained(str(_vae_folder(path)), torch_dtype=dtype, local_files_only=True)
        self.vae.eval().requires_grad_(False)
        config = self.vae.config
        self.latent_channels = int(config.z_dim)
        for name in ("latents_mean", "latents_std"):
            if len(getattr(config, name)) != self.latent_channels:
                raise ValueError(
                    f"VAE config {name} has {len(getattr(config, name))} entries, expected z_dim={self.latent_channels}"
                )
        patch = int(getattr(config, "patch_size", None) or 1)
        self.spatial_compression = 2 ** (len(config.dim_mult) - 1) * patch
        self.temporal_compression = 2 ** sum(bool(d) for d in config.temperal_downsample)
        # configs state the compressions so that other entries can interpolate them; they must match the file
        for name, stated in (("spatial_compression", spatial_compression), ("temporal_compression", temporal_compression)):
            if stated is not None and stated != getattr(self, name):
                raise ValueError(f"WanVAE({path}): {name}={stated} was given but the VAE config gives {getattr(self, name)}")
        self.sample = sample
        shape = (1, self.latent_channels, 1, 1, 1)
        self.register_buffer("latents_mean", torch.tensor(config.latents_mean).view(shape), persistent=False)
        self.register_buffer("latents_std", torch.tensor(config.latents_std).view(shape), persistent=False)

    def latent_frames(self, num_frames: int) -> int:
        return _check_frames(num_frames, self.temporal_compression)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        self.latent_frames(video.shape[2])
        dtype = next(self.vae.parameters()).dtype
        posterior = self.vae.encode(video.to(dtype)).latent_dist
        z = posterior.sample() if self.sample else posterior.mode()
        return ((z.float() - self.latents_mean.float()) / self.latents_std.float()).to(video.dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        dtype = next(self.vae.parameters()).dtype
        z = latents.float() * self.latents_std.float() + self.latents_mean.float()
        video = self.vae.decode(z.to(dtype)).sample
        return video.clamp(-1, 1).to(latents.dtype)
