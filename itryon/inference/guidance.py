"""Classifier-free guidance per condition, all variants in one batched backbone call.

Each guided group of conditions has its own scale ``s_g``; with ``v_c`` the velocity given every condition and
``v_{-g}`` the velocity with group ``g``'s conditions dropped (each adapter's own null condition),

    ``v = v_c + sum_g (s_g - 1) (v_c - v_{-g})``

so that one group at scale ``s`` is the usual ``v_{-g} + s (v_c - v_{-g})`` and every scale at 1 is ``v_c`` with
no extra pass. The groups are named by the batch keys their adapters read (:data:`GROUP_KEYS`): ``garment``,
``text`` (the global caption and the action captions) and ``hands`` (the hand prior). The conditional sample and
the dropped variants are stacked along the batch and run through the conditioning and the backbone at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

GROUP_KEYS = {"garment": ("garment",), "text": ("caption", "actions"), "hands": ("hand_prior",)}


@dataclass(frozen=True)
class GuidanceGroup:
    """Adapters dropped together in one unconditional variant, and the scale of their guidance."""

    name: str
    adapters: tuple[str, ...]
    scale: float


def guidance_groups(
    conditioning: nn.Module,
    scales: Mapping[str, float] | None = None,
    overall: float = 1.0,
    overall_drop: str | Sequence[str] = "all",
) -> list[GuidanceGroup]:
    """The groups with a scale other than 1.

    ``scales`` maps :data:`GROUP_KEYS` names to scales; a group whose adapters the stack lacks is an error naming the
    adapters it has. ``overall`` guides the adapters of ``overall_drop`` (``"all"`` or names) together, the run's
    ``sampler.guidance_scale`` and ``guidance_drop``.
    """
    adapters = conditioning.adapters
    groups = []
    if overall != 1.0:
        names = tuple(adapters) if overall_drop == "all" else tuple(overall_drop)
        unknown = sorted(set(names) - set(adapters))
        if unknown:
            raise KeyError(f"guidance_drop names unknown adapter(s) {unknown}; valid: 'all' or {sorted(adapters)}")
        groups.append(GuidanceGroup("all" if overall_drop == "all" else "+".join(names), names, float(overall)))
    for name, scale in (scales or {}).items():
        if name not in GROUP_KEYS:
            raise KeyError(f"unknown guidance group {name!r}; valid: {sorted(GROUP_KEYS)}")
        if scale is None or float(scale) == 1.0:
            continue
        members = tuple(n for n, a in adapters.items() if set(a.input_keys) & set(GROUP_KEYS[name]))
        if not members:
            raise ValueError(
                f"guidance for {name!r} needs an adapter reading {list(GROUP_KEYS[name])}; the model's adapters are "
                + ", ".join(f"{n} ({list(a.input_keys)})" for n, a in adapters.items())
            )
        groups.append(GuidanceGroup(name, members, float(scale)))
    return groups


def repeat_batch(batch: Mapping[str, Any], times: int) -> dict[str, Any]:
    """``batch`` stacked ``times`` times along the batch: tensors concatenated, lists repeated."""
    if times == 1:
        return dict(batch)
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if torch.is_tensor(value):
            out[key] = torch.cat([value] * times)
        elif isinstance(value, list):
            out[key] = value * times
        else:
            out[key] = value
    return out


def variant_keeps(
    conditioning: nn.Module, groups: Sequence[GuidanceGroup], batch_size: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """Per adapter ``((1 + len(groups)) * B,)`` bool: variant 0 keeps everything, variant ``1 + j`` drops group j."""
    keeps = {}
    for name in conditioning.adapters:
        flags = [torch.ones(batch_size, dtype=torch.bool, device=device)]
        flags += [torch.full((batch_size,), name not in g.adapters, dtype=torch.bool, device=device) for g in groups]
        keeps[name] = torch.cat(flags)
    return keeps


def combine(velocities: torch.Tensor, groups: Sequence[GuidanceGroup]) -> torch.Tensor:
    """``v_c + sum_g (s_g - 1)(v_c - v_{-g})`` from the stacked variants ``((1 + G) * B, ...)``."""
    parts = velocities.chunk(1 + len(groups))
    v = parts[0]
    for group, dropped in zip(groups, parts[1:]):
        v = v + (group.scale - 1.0) * (parts[0] - dropped)
    return v
