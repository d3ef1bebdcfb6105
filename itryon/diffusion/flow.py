"""Rectified-flow (flow-matching) noise schedule, as Wan2.1 trains it.

``x_t = (1 - t) * x_0 + t * noise`` with ``t`` in (0, 1); the model predicts the velocity ``noise - x_0``
and receives the timestep ``t * num_train_timesteps``.
"""

from __future__ import annotations

from typing import Literal

import torch
from diffusers.training_utils import compute_density_for_timestep_sampling

TIMESTEP_SAMPLINGS = ("uniform", "logit_normal", "mode")


class FlowMatching:
    """Samples training times and builds (noisy input, velocity target) pairs.

    ``timestep_sampling`` is one of diffusers' densities (``compute_density_for_timestep_sampling``):
    ``uniform``, ``logit_normal`` (SD3, concentrates on mid noise levels; ``logit_mean``, ``logit_std``) or ``mode``
    (``mode_scale``); ``shift`` > 1 then moves sampled times towards high noise (``t' = s t / (1 + (s - 1) t)``),
    as Wan does for large resolutions. The loss weight per time is the loss's choice
    (:mod:`itryon.diffusion.losses`); this class only decides how often each time is seen.
    """

    def __init__(
        self,
        shift: float = 1.0,
        timestep_sampling: Literal["uniform", "logit_normal", "mode"] = "logit_normal",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        mode_scale: float = 1.29,
        num_train_timesteps: int = 1000,
    ) -> None:
        if shift <= 0:
            raise ValueError(f"shift must be positive, got {shift}")
        if timestep_sampling not in TIMESTEP_SAMPLINGS:
            raise ValueError(f"timestep_sampling must be one of {TIMESTEP_SAMPLINGS}, got {timestep_sampling!r}")
        self.shift = shift
        self.timestep_sampling = timestep_sampling
        self.logit_mean = logit_mean
        self.logit_std = logit_std
        self.mode_scale = mode_scale
        self.num_train_timesteps = num_train_timesteps

    def sample_t(
        self, batch_size: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[B]`` times in (0, 1)."""
        t = compute_density_for_timestep_sampling(
            self.timestep_sampling,
            batch_size,
            logit_mean=self.logit_mean,
            logit_std=self.logit_std,
            mode_scale=self.mode_scale,
            device=device,
            generator=generator,
        )
        return self.apply_shift(t).clamp(1e-5, 1.0 - 1e-5)

    def apply_shift(self, t: torch.Tensor) -> torch.Tensor:
        return self.shift * t / (1.0 + (self.shift - 1.0) * t)

    @staticmethod
    def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t`` for clean ``x0`` ``(B, ...)``, ``noise`` like it and ``t`` ``(B,)``."""
        t = t.view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
        return (1.0 - t) * x0 + t * noise

    @staticmethod
    def velocity(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The regression target ``noise - x0``."""
        return noise - x0

    def model_timestep(self, t: torch.Tensor) -> torch.Tensor:
        """The timestep the backbone embeds: ``t * num_train_timesteps``."""
        return t * self.num_train_timesteps
