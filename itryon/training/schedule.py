"""The learning-rate schedule: linear warm-up, cosine decay to a floor, then the floor; torch's schedulers chained."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LambdaLR, LinearLR, LRScheduler, SequentialLR


class _Floor:
    """A picklable constant factor (LambdaLR keeps callable objects in its state)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, step: int) -> float:
        return self.factor


def warmup_cosine(optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> LRScheduler:
    """Step ``s`` trains at ``lr * (s + 1) / warmup_steps`` during the warm-up, then at
    ``lr * (r + (1 - r) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2)`` with ``r = min_lr_ratio``, and at
    ``lr * r`` from ``total_steps`` on. ``min_lr_ratio >= 1`` or ``total_steps <= warmup_steps``: constant after the
    warm-up. A resumed run continues the schedule it started with."""
    floor = min(group.get("initial_lr", group["lr"]) for group in optimizer.param_groups) * min_lr_ratio
    phases: list[LRScheduler] = []
    milestones: list[int] = []
    if warmup_steps > 0:
        phases.append(LinearLR(optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps - 1))
        milestones.append(warmup_steps)
    if min_lr_ratio >= 1.0 or total_steps <= warmup_steps:
        phases.append(ConstantLR(optimizer, factor=1.0, total_iters=0))
    else:
        phases.append(CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=floor))
        phases.append(LambdaLR(optimizer, _Floor(min_lr_ratio)))
        milestones.append(total_steps)
    return phases[0] if len(phases) == 1 else SequentialLR(optimizer, phases, milestones=milestones)
