"""Rectified-flow (flow-matching) noise schedule, as Wan2.1 trains it.

``x_t = (1 - t) * x_0 + t * noise`` with ``t`` in (0, 1); the model predicts the velocity ``noise - x_0``
and receives the timestep ``t * num_train_timesteps``.
"""

from __future__ import annotations

from typing import Literal

import torch


class FlowMatching:
    """Samples training times and builds (noisy input, velocity target) pairs.

    ``timestep_sampling``: ``uniform`` or ``logit_normal`` (SD3-style, concentrates on mid noise levels);
    ``shift`` > 1 moves sampled times towards high noise (``t' = s t / (1 + (s - 1) t)``), as Wan does for
    large resolutions.
    """

    def __init__(
        self,
        shift: float = 1.0,
        timestep_sampling: Literal["uniform", "logit_normal"] = "logit_normal",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        num_train_timesteps: int = 1000,
    ) -> None:
        if shift <= 0:
            raise ValueError(f"shift must be positive, got {shift}")
        if timestep_sampling not in ("uniform", "logit_normal"):
            raise ValueError(f"timestep_sampling must be 'uniform' or 'logit_normal', got {timestep_sampling!r}")
        self.shift = shift
        self.timestep_sampling = timestep_sampling
        self.logit_mean = logit_mean
        self.logit_std = logit_std
        self.num_train_timesteps = num_train_timesteps

    def sample_t(self, batch_size: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B]`` times in (0, 1)."""
        if self.timestep_sampling == "uniform":
            t = torch.rand(batch_size, generator=generator, device=device)
        else:
            z = torch.randn(batch_size, generator=generator, device=device)
            t = torch.sigmoid(self.logit_mean + self.logit_std * z)
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
