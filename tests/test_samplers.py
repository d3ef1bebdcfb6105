"""Flow samplers from diffusers' schedulers: the same fixed point on toy flows, scheduler configs honoured."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import UniPCMultistepScheduler

from itryon.diffusion import SOLVERS, EulerSampler, FlowSampler

POINT = torch.tensor([[0.7], [-0.3]], dtype=torch.float64)


def delta_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The exact velocity of the flow whose data is the single point POINT: ``(x - x*) / t``."""
    return (x - POINT) / (t.view(-1, 1) / 1000)


def gaussian_velocity(m: float, s: float):
    """The exact velocity of data N(m, s^2); its flow maps noise n to m + s n."""

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.view(-1, 1) / 1000
        return -m + (x - (1 - t) * m) * (t - (1 - t) * s * s) / ((1 - t) ** 2 * s * s + t * t)

    return velocity


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_every_solver_lands_on_the_data_point(solver: str, shift: float) -> None:
    noise = torch.tensor([[1.3], [-0.4]], dtype=torch.float64)
    out = FlowSampler(num_steps=7, shift=shift, solver=solver).integrate(delta_velocity, noise)
    torch.testing.assert_close(out, POINT, atol=1e-6, rtol=0)


@pytest.mark.parametrize("solver", SOLVERS)
def test_every_solver_reaches_the_gaussian_flow_map(solver: str) -> None:
    m, s = 0.7, 0.3
    noise = torch.tensor([[1.3], [-0.4], [0.2]], dtype=torch.float64)
    steps = 500 if solver == "euler" else 80  # first order needs more steps for the same error
    out = FlowSampler(num_steps=steps, shift=3.0, solver=solver).integrate(gaussian_velocity(m, s), noise)
    torch.testing.assert_close(out, m + s * noise, atol=5e-3, rtol=0)


def test_unipc_read_from_a_scheduler_config(tmp_path) -> None:
    UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0, solver_order=3
    ).save_pretrained(tmp_path / "scheduler")
    config = json.loads((tmp_path / "scheduler" / "scheduler_config.json").read_text())
    scheduler = UniPCMultistepScheduler.from_config(config)
    sampler = FlowSampler.from_scheduler(scheduler, num_steps=9)
    assert (sampler.solver, sampler.shift) == ("unipc", 5.0)
    made = sampler.make_scheduler()
    assert type(made) is UniPCMultistepScheduler and made.config.solver_order == 3 and made.config.flow_shift == 5.0
    noise = torch.tensor([[1.3], [-0.4]], dtype=torch.float64)
    torch.testing.assert_close(sampler.integrate(delta_velocity, noise), POINT, atol=1e-6, rtol=0)


def test_euler_sampler_keeps_its_old_steps() -> None:
    """EulerSampler is the euler FlowSampler; the model sees diffusers' own timesteps."""
    seen = []
    EulerSampler(num_steps=4, shift=2.0).sample(
        lambda x, t, u: seen.append(t[0].item()) or torch.zeros_like(x), torch.zeros(1, 1)
    )
    from diffusers import FlowMatchEulerDiscreteScheduler

    ref = FlowMatchEulerDiscreteScheduler(shift=2.0)
    ref.set_timesteps(4)
    assert seen == ref.timesteps.tolist()


def test_unknown_solver_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"one of \('euler', 'unipc', 'dpm\+\+'\)"):
        FlowSampler(solver="heun")
