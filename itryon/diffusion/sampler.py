"""Sampling the flow ODE with diffusers' schedulers: Euler, UniPC and DPM++ for flow matching, with the flow shift.

``solver`` names the scheduler (:data:`SOLVERS`); each is built with the flow-matching settings Wan2.1 uses
(``flow_prediction`` with flow sigmas for UniPC and DPM++, a static ``shift`` for Euler), or read from a
scheduler config (a pipeline folder's ``scheduler/scheduler_config.json``) with :meth:`FlowSampler.from_scheduler`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

# denoise(x_t, model_timestep, unconditional) -> velocity
DenoiseFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]
# velocity(x_t, model_timestep) -> velocity (guidance already applied)
VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SOLVERS = ("euler", "unipc", "dpm++")
SCHEDULER_SOLVERS = {
    "FlowMatchEulerDiscreteScheduler": "euler",
    "UniPCMultistepScheduler": "unipc",
    "DPMSolverMultistepScheduler": "dpm++",
}


def flow_scheduler(solver: str, shift: float = 1.0, num_train_timesteps: int = 1000) -> SchedulerMixin:
    """diffusers' scheduler for ``solver`` set up for flow matching with ``shift``."""
    if solver == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps, shift=shift)
    flow = {
        "num_train_timesteps": num_train_timesteps,
        "prediction_type": "flow_prediction",
        "use_flow_sigmas": True,
        "flow_shift": shift,
    }
    if solver == "unipc":
        return UniPCMultistepScheduler(**flow)
    if solver == "dpm++":
        return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **flow)
    raise ValueError(f"sampler must be one of {SOLVERS}, got {solver!r}")


class FlowSampler:
    """Integrates ``dx/dt = v`` from pure noise (t = 1) to data (t = 0) in ``num_steps`` steps of ``solver``.

    ``guidance_scale`` > 1 mixes conditional and unconditional velocities (``v_u + s (v_c - v_u)``) in
    :meth:`sample`; per-condition guidance lives in :mod:`itryon.inference.guidance` and calls :meth:`integrate`.
    ``scheduler_config`` (a diffusers scheduler config) replaces the scheduler built from ``solver`` and ``shift``.
    """

    def __init__(
        self,
        num_steps: int = 20,
        shift: float = 1.0,
        guidance_scale: float = 1.0,
        num_train_timesteps: int = 1000,
        solver: Literal["euler", "unipc", "dpm++"] = "euler",
        scheduler_config: Mapping[str, Any] | None = None,
    ) -> None:
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if solver not in SOLVERS:
            raise ValueError(f"sampler must be one of {SOLVERS}, got {solver!r}")
        self.num_steps = num_steps
        self.shift = shift
        self.guidance_scale = guidance_scale
        self.num_train_timesteps = num_train_timesteps
        self.solver = solver
        self.scheduler_config = dict(scheduler_config) if scheduler_config is not None else None

    @classmethod
    def from_scheduler(cls, scheduler: SchedulerMixin, num_steps: int = 20, guidance_scale: float = 1.0) -> FlowSampler:
        """A sampler that integrates with a copy of ``scheduler`` (one of :data:`SCHEDULER_SOLVERS`), its config as is."""
        name = type(scheduler).__name__
        if name not in SCHEDULER_SOLVERS:
            raise ValueError(
                f"scheduler {name} is not a flow scheduler itryon samples with; use one of {sorted(SCHEDULER_SOLVERS)}"
            )
        config = dict(scheduler.config)
        shift = float(config.get("shift", config.get("flow_shift", 1.0)) or 1.0)
        return cls(
            num_steps,
            shift,
            guidance_scale,
            int(config.get("num_train_timesteps", 1000)),
            SCHEDULER_SOLVERS[name],
            scheduler_config=config,
        )

    def replace(self, **changes: Any) -> FlowSampler:
        """A copy with some arguments changed (``num_steps``, ``guidance_scale``, ``solver``...); a new ``solver`` or
        ``shift`` drops the scheduler config."""
        args = {
            "num_steps": self.num_steps,
            "shift": self.shift,
            "guidance_scale": self.guidance_scale,
            "num_train_timesteps": self.num_train_timesteps,
            "solver": self.solver,
            "scheduler_config": self.scheduler_config,
        }
        changes = {k: v for k, v in changes.items() if v is not None}
        if any(k in changes and changes[k] != args[k] for k in ("solver", "shift")):
            args["scheduler_config"] = None
        args.update(changes)
        return FlowSampler(**args)

    def make_scheduler(self) -> SchedulerMixin:
        """A fresh scheduler (multistep schedulers keep state between steps)."""
        base = flow_scheduler(self.solver, self.shift, self.num_train_timesteps)
        return type(base).from_config(self.scheduler_config) if self.scheduler_config is not None else base

    @torch.no_grad()
    def integrate(self, velocity: VelocityFn, noise: torch.Tensor) -> torch.Tensor:
        """Clean latents from ``noise`` ``(B, C, F, h, w)`` following ``velocity(x, model_timestep)``."""
        sched = self.make_scheduler()
        sched.set_timesteps(self.num_steps, device=noise.device)
        # the model sees the scheduler's exact time sigma * 1000 (UniPC and DPM++ round their timesteps to integers;
        # for Euler this is bitwise its timestep)
        model_times = sched.sigmas[: len(sched.timesteps)].to(noise.device) * self.num_train_timesteps
        x = noise
        for t, model_t in zip(sched.timesteps, model_times):
            v = velocity(x, model_t.expand(x.shape[0]))
            x = sched.step(v.float(), t, x.float(), return_dict=False)[0].to(noise.dtype)
        return x

    def sample(self, denoise: DenoiseFn, noise: torch.Tensor) -> torch.Tensor:
        """Clean latents from ``noise`` with classifier-free guidance at ``guidance_scale``."""

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            v = denoise(x, t, False)
            if self.guidance_scale != 1.0:
                v_uncond = denoise(x, t, True)
                v = v_uncond + self.guidance_scale * (v - v_uncond)
            return v

        return self.integrate(velocity, noise)


class EulerSampler(FlowSampler):
    """:class:`FlowSampler` with the Euler solver (diffusers' ``FlowMatchEulerDiscreteScheduler``)."""

    def __init__(
        self, num_steps: int = 20, shift: float = 1.0, guidance_scale: float = 1.0, num_train_timesteps: int = 1000
    ) -> None:
        super().__init__(num_steps, shift, guidance_scale, num_train_timesteps, "euler")
