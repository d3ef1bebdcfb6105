"""What an interaction judge sees (:class:`JudgedClip`) and what it must answer (:class:`InteractionJudge`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch


@dataclass
class JudgedClip:
    """One clip for a judge; tensors are per sample (no batch dimension), videos ``(3, T, H, W)`` in [-1, 1]."""

    generated: torch.Tensor
    actions: Sequence[Mapping[str, Any]]
    video: torch.Tensor | None = None
    counterfactual: torch.Tensor | None = None
    interaction_mask: torch.Tensor | None = None  # (1, T, H, W)
    caption: str | None = None
    agnostic_mask: torch.Tensor | None = None  # (1, T, H, W): where the model generates
    family: str = "standard"  # the benchmark family of the clip (synthetic world: ``meta["family"]``)


@runtime_checkable
class InteractionJudge(Protocol):
    """Decides whether interactions are performed in generated clips."""

    name: str
    batch_keys: tuple[str, ...]  # batch keys it reads besides the generated video

    def judge_actions(self, clip: JudgedClip) -> list[bool | None]:
        """One verdict per action of ``clip``: performed in its window (True), not (False), undecidable (None)."""
        ...

    def judge_passive(self, clip: JudgedClip) -> bool | None:
        """For a clip without actions: an interaction appears (True), none (False), undecidable (None)."""
        ...
