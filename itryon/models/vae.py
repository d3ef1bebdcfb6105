"""Video autoencoders with one interface: ``encode(video) -> latents``, ``decode(latents) -> video``.

* ``PixelVAE``: an exact, parameter-free "VAE" for the synthetic world (space-to-depth + Wan-style causal
  temporal folding), so CPU runs need no pretrained autoencoder.
* ``LinearVAE``: the pixel folding followed by a principal-component projection fitted on videos of the data
  (a linear autoencoder trained once and frozen), so that the latent channels are few and each carries
  signal, as in real latent diffusion, at the cost of a matrix product.
* ``WanVAE``: diffusers' ``AutoencoderKLWan`` from a local folder, with Wan's per-channel latent
  normalisation applied here and nowhere else.

Both take video ``(B, 3, T, H, W)`` in [-1, 1] with ``T = 1 + k * temporal_compression`` (any ``T`` when the
temporal compression is 1) and give latents ``(B, latent_channels, 1 + k, H / s, W / s)``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from itryon.data.temporal import latent_frame_count
from itryon.models.precision import DTypeName, as_dtype


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
        return latent_frame_count(num_frames, self.temporal_compression)

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


class LinearVAE(nn.Module):
    """``PixelVAE`` folding, then the top ``latent_channels`` principal components of the folded values.

    ``encode``: ``z = ((fold(x) - mean) @ components) / scale`` per latent pixel, ``scale`` the root mean square
    of all components' coefficients (one number: the latent keeps the components' relative variances, so that
    a latent MSE is the pixel MSE inside the subspace); ``decode`` is the transpose followed by unfolding, exact for
    latent frames after the first (the first holds one frame repeated by the fold, whose copies decoding averages). Build it with :meth:`from_dataset` (fitted on the ``video`` and ``garment``
    entries of a dataset's first samples, deterministic) or from fitted tensors.
    """

    def __init__(
        self,
        mean: torch.Tensor,
        components: torch.Tensor,
        scale: float | torch.Tensor,
        spatial_compression: int = 4,
        temporal_compression: int = 4,
        image_channels: int = 3,
    ):
        super().__init__()
        self.fold = PixelVAE(spatial_compression, temporal_compression, image_channels)
        folded = self.fold.latent_channels
        if mean.shape != (folded,) or components.ndim != 2 or components.shape[0] != folded:
            raise ValueError(
                f"LinearVAE({spatial_compression}, {temporal_compression}) folds {folded} values per latent pixel: mean "
                f"must be ({folded},) and components ({folded}, k); got {tuple(mean.shape)} and {tuple(components.shape)}"
            )
        self.spatial_compression = spatial_compression
        self.temporal_compression = temporal_compression
        self.image_channels = image_channels
        self.latent_channels = int(components.shape[1])
        self.register_buffer("mean", mean.float().view(1, folded, 1, 1, 1), persistent=False)
        self.register_buffer("components", components.float(), persistent=False)  # (folded, k), orthonormal columns
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32), persistent=False)

    @classmethod
    def from_dataset(
        cls,
        dataset,
        latent_channels: int = 16,
        num_samples: int = 128,
        spatial_compression: int = 4,
        temporal_compression: int = 4,
    ) -> LinearVAE:
        """Fit the principal components on the ``video`` (and ``garment``, as a one-frame video) of the first
        ``num_samples`` samples of ``dataset`` (in float64, so the fit is the same on every machine)."""
        fold = PixelVAE(spatial_compression, temporal_compression)
        if latent_channels < 1 or latent_channels > fold.latent_channels:
            raise ValueError(f"latent_channels must lie in [1, {fold.latent_channels}], got {latent_channels}")
        count = min(num_samples, len(dataset))
        if count == 0:
            raise ValueError("LinearVAE.from_dataset needs a dataset with at least one sample")
        total = torch.zeros(fold.latent_channels, dtype=torch.float64)
        outer = torch.zeros(fold.latent_channels, fold.latent_channels, dtype=torch.float64)
        n = 0
        skipped: list[str] = []
        for i in range(count):
            try:
                sample = dataset[i]
            except Exception as exc:  # one unreadable clip must not stop the fit: it is left out and reported
                skipped.append(f"{i}: {exc}")
                continue
            parts = [sample["video"].unsqueeze(0)]
            if "garment" in sample:
                parts.append(sample["garment"][None, :, None])
            for video in parts:
                x = fold.encode(video.float()).permute(0, 2, 3, 4, 1).reshape(-1, fold.latent_channels).double()
                total += x.sum(0)
                outer += x.T @ x
                n += x.shape[0]
        if skipped:
            warnings.warn(
                f"LinearVAE.from_dataset left out {len(skipped)} of {count} samples that could not be loaded: "
                + "; ".join(skipped[:3]),
                stacklevel=2,
            )
        if n == 0:
            raise ValueError(f"LinearVAE.from_dataset: none of the first {count} samples could be loaded")
        mean = total / n
        cov = outer / n - torch.outer(mean, mean)
        values, vectors = torch.linalg.eigh(cov)  # ascending
        order = torch.argsort(values, descending=True)[:latent_channels]
        components = vectors[:, order]
        components = components * torch.where(components.sum(0) < 0, -1.0, 1.0)  # a fixed sign per component
        scale = values[order].clamp_min(0).mean().sqrt()
        return cls(mean.float(), components.float(), float(scale), spatial_compression, temporal_compression)

    def latent_frames(self, num_frames: int) -> int:
        return self.fold.latent_frames(num_frames)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        x = self.fold.encode(video) - self.mean.to(video.dtype)  # (B, C0, F, h, w)
        z = torch.einsum("bcfhw,ck->bkfhw", x, self.components.to(video.dtype))
        return z / self.scale.to(video.dtype)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        x = torch.einsum("bkfhw,ck->bcfhw", latents * self.scale.to(latents.dtype), self.components.to(latents.dtype))
        return self.fold.decode(x + self.mean.to(latents.dtype))


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
    ``sample=False`` encodes to the posterior mode (deterministic), ``True`` samples it. ``dtype`` (a name such as
    ``bfloat16`` or a ``torch.dtype``) is the precision of the frozen weights and of the encoder's compute; latents
    come back in the input's dtype.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        dtype: DTypeName | torch.dtype = "float32",
        sample: bool = False,
        spatial_compression: int | None = None,
        temporal_compression: int | None = None,
    ):
        super().__init__()
        from diffusers import AutoencoderKLWan

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"Wan VAE folder {path} does not exist")
        dtype = as_dtype(dtype, "WanVAE dtype")
        self.vae = AutoencoderKLWan.from_pretrained(str(_vae_folder(path)), torch_dtype=dtype, local_files_only=True)
        self.source = str(path)  # where the frozen weights come from (listed by the weights export)
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
        for name, stated in (
            ("spatial_compression", spatial_compression),
            ("temporal_compression", temporal_compression),
        ):
            if stated is not None and stated != getattr(self, name):
                raise ValueError(
                    f"WanVAE({path}): {name}={stated} was given but the VAE config gives {getattr(self, name)}"
                )
        self.sample = sample
        shape = (1, self.latent_channels, 1, 1, 1)
        self.register_buffer("latents_mean", torch.tensor(config.latents_mean).view(shape), persistent=False)
        self.register_buffer("latents_std", torch.tensor(config.latents_std).view(shape), persistent=False)

    def latent_frames(self, num_frames: int) -> int:
        return latent_frame_count(num_frames, self.temporal_compression)

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
