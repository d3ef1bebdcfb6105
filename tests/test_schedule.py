"""The learning-rate schedule equals its closed form at every step: warm-up, cosine to the floor, the floor."""

from __future__ import annotations

import math

import pytest
import torch

from itryon.training.schedule import warmup_cosine


def closed_form(step: int, warmup: int, total: int, floor: float) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if floor >= 1.0 or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@pytest.mark.parametrize(
    "warmup, total, floor", [(20, 600, 0.1), (0, 100, 0.1), (20, 600, 1.0), (1, 50, 0.0), (5, 5, 0.5), (3, 2, 0.2)]
)
def test_every_step_follows_the_closed_form(warmup, total, floor):
    lr = 2e-3
    params = [torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.AdamW([{"params": params[:1], "weight_decay": 0.1}, {"params": params[1:]}], lr=lr)
    scheduler = warmup_cosine(optimizer, warmup, total, floor)
    for step in range(total + 20):  # past the horizon: the floor
        expected = lr * closed_form(step, warmup, total, floor)
        for group in optimizer.param_groups:
            assert group["lr"] == pytest.approx(expected, rel=1e-12, abs=1e-18), step
        optimizer.step()
        scheduler.step()


def test_a_resumed_schedule_continues_where_it_stopped():
    """Restored as a checkpoint restores it (optimizer and scheduler states), the schedule goes on unchanged."""

    def run(steps, state=None):
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = warmup_cosine(optimizer, 4, 30, 0.1)
        if state is not None:
            optimizer.load_state_dict(state[0])
            scheduler.load_state_dict(state[1])
        seen = []
        for _ in range(steps):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return seen, (optimizer.state_dict(), scheduler.state_dict())

    whole, _ = run(20)
    first, state = run(12)
    second, _ = run(8, state)
    assert first + second == pytest.approx(whole, rel=1e-12)
