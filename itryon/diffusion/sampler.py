"""Euler sampling of the flow ODE with classifier-free guidance, on diffusers' flow-matching scheduler."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

# denoise(x_t, model_timestep, unconditional) -> velocity
DenoiseFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


class EulerSampler:
    """Integrates ``dx/dt = v`` from pure noise (t = 1) to data (t = 0) in ``num_steps`` Euler steps.

    ``guidance_scale`` > 1 mixes conditional and unconditional velocities (``v_u + s (v_c - v_u)``).
    """

    def __init__(
        self, num_steps: int = 20, shift: float = 1.0, guidance_scale: float = 1.0, num_train_timesteps: int = 1000
    ) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self.num_steps = num_steps
        self.shift = shift
        self.guidance_scale = guidance_scale
        self.num_train_timesteps = num_train_timesteps

    def scheduler(self, device: torch.device | str) -> FlowMatchEulerDiscreteScheduler:
        sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=self.num_train_timesteps, shift=self.shift)
        sched.set_timesteps(self.num_steps, device=device)
        return sched

    @torch.no_grad()
    def sample(self, denoise: DenoiseFn, noise: torch.Tensor) -> torch.Tensor:
        """Clean latents from ``noise`` ``(B, C, F, h, w)``."""
        sched = self.scheduler(noise.device)
        x = noise
        for t in sched.timesteps:
            tb = t.expand(x.shape[0]).to(x.device)
            v = denoise(x, tb, False)
            if self.guidance_scale != 1.0:
                v_uncond = denoise(x, tb, True)
                v = v_uncond + self.guidance_scale * (v - v_uncond)
            x = sched.step(v.float(), t, x.float(), return_dict=False)[0].to(noise.dtype)
        return x
