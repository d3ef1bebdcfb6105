"""Interaction success rate (ISR) with a pluggable judge, and the judge-free counterfactual judge.

An *interaction* is one action span ``{start, end, text}`` of a clip. ISR is the fraction of
interactions a judge finds performed in their window. On passive clips (no actions) the judge may
also say whether the generated video shows an interaction where none happens: the false-interaction
rate is the fraction of judged passive clips where it does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torchmetrics import Metric


@dataclass
class JudgedClip:
    """One clip for a judge; tensors are per sample (no batch dimension), videos ``(3, T, H, W)`` in [-1, 1]."""

    generated: torch.Tensor
    actions: Sequence[Mapping[str, Any]]
    video: torch.Tensor | None = None
    counterfactual: torch.Tensor | None = None
    interaction_mask: torch.Tensor | None = None  # (1, T, H, W)
    caption: str | None = None


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


class CounterfactualJudge:
    """Judge for the synthetic world, where every clip comes with a counterfactual: for an interaction clip
    the clip without the garment's response, for a passive-gesture clip the response the gesture could be
    mistaken for.

    An action succeeds when, inside its window (and ``interaction_mask`` if present), the generated video
    is closer to the real video than to the counterfactual in summed absolute difference. Pixels where the
    two references agree add the same amount to both sides, so the test is decided where they differ. An
    action whose references do not differ by more than ``tolerance`` in its window is undecidable. A
    passive clip (no actions) shows a false interaction when the generated video is closer to its
    counterfactual than to the video over the whole clip; without a counterfactual that differs from the
    video it is undecidable.
    """

    name = "counterfactual"
    batch_keys = ("video", "counterfactual", "actions", "interaction_mask")

    def __init__(self, use_mask: bool = True, tolerance: float = 2.0 / 255.0) -> None:
        self.use_mask, self.tolerance = use_mask, tolerance

    def _margin(self, clip: JudgedClip, frames: slice, use_mask: bool) -> float | None:
        """``sum w (|g - cf| - |g - r|)`` over ``frames``; positive = closer to the real video. None if r == cf there."""
        if clip.video is None or clip.counterfactual is None:
            raise ValueError("CounterfactualJudge needs the batch keys 'video' and 'counterfactual' for every interaction clip")
        g, r, cf = (x[:, frames].float() for x in (clip.generated, clip.video, clip.counterfactual))  # (3, t, H, W)
        if (r - cf).abs().max() <= self.tolerance:
            return None
        w = torch.ones_like(g[:1])
        if use_mask and clip.interaction_mask is not None:
            w = clip.interaction_mask[:, frames].float().to(g.device)  # (1, t, H, W)
            if w.sum() == 0:
                return None
        return float((w * ((g - cf).abs() - (g - r).abs())).sum())

    def judge_actions(self, clip: JudgedClip) -> list[bool | None]:
        verdicts = []
        for a in clip.actions:
            margin = self._margin(clip, slice(int(a["start"]), int(a["end"])), self.use_mask)
            verdicts.append(None if margin is None else margin > 0)
        return verdicts

    def judge_passive(self, clip: JudgedClip) -> bool | None:
        if clip.video is None or clip.counterfactual is None:
            return None
        margin = self._margin(clip, slice(None), use_mask=False)  # a passive clip has no interaction region
        return None if margin is None else margin < 0


class InteractionSuccessRate(Metric):
    """ISR and false-interaction rate; :meth:`compute` returns ``{"value": ISR, "false_interaction_rate": ...}``
    (NaN where nothing was judged) plus the counts."""

    higher_is_better = True
    is_differentiable = False
    full_state_update = False

    def __init__(self, judge: InteractionJudge, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(judge, InteractionJudge):
            raise TypeError(f"judge must implement InteractionJudge (name, batch_keys, judge_actions, judge_passive), got {type(judge).__name__}")
        self.judge = judge
        for name in ("successes", "interactions", "false_interactions", "passive_clips"):
            self.add_state(name, torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @property
    def batch_keys(self) -> tuple[str, ...]:
        return self.judge.batch_keys

    def update(
        self,
        preds: torch.Tensor,
        target: torch.Tensor | None = None,
        actions: Sequence[Sequence[Mapping[str, Any]]] | None = None,
        counterfactual: torch.Tensor | None = None,
        interaction_mask: torch.Tensor | None = None,
        caption: Sequence[str] | None = None,
    ) -> None:
        """``preds`` ``(B, 3, T, H, W)``; ``actions`` one list of ``{start, end, text}`` per clip."""
        if actions is None:
            raise ValueError("InteractionSuccessRate needs the batch key 'actions' (a list of action lists, one per clip)")
        if len(actions) != preds.shape[0]:
            raise ValueError(f"InteractionSuccessRate: {len(actions)} action lists for {preds.shape[0]} clips")
        for i, acts in enumerate(actions):
            clip = JudgedClip(
                generated=preds[i],
                actions=list(acts),
                video=target[i] if target is not None else None,
                counterfactual=counterfactual[i] if counterfactual is not None else None,
                interaction_mask=interaction_mask[i] if interaction_mask is not None else None,
                caption=caption[i] if caption is not None else None,
            )
            if clip.actions:
                verdicts = [v for v in self.judge.judge_actions(clip) if v is not None]
                self.successes += sum(verdicts)
                self.interactions += len(verdicts)
            else:
                verdict = self.judge.judge_passive(clip)
                if verdict is not None:
                    self.false_interactions += int(verdict)
                    self.passive_clips += 1

    def compute(self) -> dict[str, torch.Tensor]:
        def ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a.double() / b if int(b) > 0 else torch.tensor(float("nan"), dtype=torch.float64, device=a.device)

        return {
            "value": ratio(self.successes, self.interactions),
            "false_interaction_rate": ratio(self.false_interactions, self.passive_clips),
            "interactions": self.interactions.clone(),
            "passive_clips": self.passive_clips.clone(),
        }

    def describe(self) -> dict:
        extra = self.judge.describe() if hasattr(self.judge, "describe") else {}
        return {"judge": self.judge.name, "unit": "one action span", **extra}
