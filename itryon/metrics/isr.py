"""Interaction success rate (ISR) with a pluggable judge, per benchmark family and with its chance floor.

An *interaction* is one action span ``{start, end, text}`` of a clip. ISR is the fraction of
interactions a judge finds performed in their window. On passive clips (no actions) the judge also
says whether the generated video shows a false interaction; the false-interaction rate is the fraction
of judged passive clips where it does.

Every clip belongs to a family of the synthetic benchmark (``meta["family"]``; clips without one are
``standard``), and rates are also kept per family. When the batch has ``agnostic`` (the model's input
with the garment region greyed), the judge also rates it as if it were the generation: the *chance*
floor of copying the input, on the same clips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torchmetrics import Metric

from itryon.data.synthetic.families import FAMILIES, STANDARD
from itryon.metrics.counterfactual_judge import CounterfactualJudge
from itryon.metrics.interaction_judge import InteractionJudge, JudgedClip

__all__ = ["CounterfactualJudge", "InteractionJudge", "InteractionSuccessRate", "JudgedClip", "clip_family"]

_COUNTS = ("successes", "interactions", "false_interactions", "passive_clips")


def clip_family(meta: Mapping[str, Any] | None) -> str:
    """The family named by a clip's ``meta`` (``standard`` without one); unknown names raise."""
    family = (meta or {}).get("family") or STANDARD
    if family not in FAMILIES:
        raise ValueError(
            f"clip {(meta or {}).get('id', '?')!r}: meta['family'] is {family!r}; expected one of {list(FAMILIES)}"
        )
    return family


class InteractionSuccessRate(Metric):
    """ISR and false-interaction rate, overall, per family and at chance.

    :meth:`compute` returns ``value`` (ISR), ``false_interaction_rate``, ``interactions`` and
    ``passive_clips``; with ``agnostic`` given, ``chance`` and ``false_interaction_rate_chance``; and once a
    clip of a non-standard family was seen, for every family seen ``<family>`` (ISR),
    ``<family>_chance`` and, where it has passive clips, ``false_interaction_rate_<family>``.
    A rate with nothing judged is NaN.
    """

    higher_is_better = True
    is_differentiable = False
    full_state_update = False

    def __init__(self, judge: InteractionJudge, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(judge, InteractionJudge):
            raise TypeError(
                f"judge must implement InteractionJudge (name, batch_keys, judge_actions, judge_passive), got {type(judge).__name__}"
            )
        self.judge = judge
        for name in (*_COUNTS, *(f"chance_{n}" for n in _COUNTS)):  # totals, and per family (F,)
            self.add_state(name, torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
            self.add_state(f"family_{name}", torch.zeros(len(FAMILIES), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("family_clips", torch.zeros(len(FAMILIES), dtype=torch.long), dist_reduce_fx="sum")

    @property
    def batch_keys(self) -> tuple[str, ...]:
        return self.judge.batch_keys

    def _add(self, name: str, family: int, value: int) -> None:
        setattr(self, name, getattr(self, name) + value)
        getattr(self, f"family_{name}")[family] += value

    def _count(self, clip: JudgedClip, family: int, prefix: str = "") -> None:
        if clip.actions:
            verdicts = [v for v in self.judge.judge_actions(clip) if v is not None]
            self._add(f"{prefix}successes", family, sum(verdicts))
            self._add(f"{prefix}interactions", family, len(verdicts))
        else:
            verdict = self.judge.judge_passive(clip)
            if verdict is not None:
                self._add(f"{prefix}false_interactions", family, int(verdict))
                self._add(f"{prefix}passive_clips", family, 1)

    def update(
        self,
        preds: torch.Tensor,
        target: torch.Tensor | None = None,
        actions: Sequence[Sequence[Mapping[str, Any]]] | None = None,
        counterfactual: torch.Tensor | None = None,
        interaction_mask: torch.Tensor | None = None,
        caption: Sequence[str] | None = None,
        agnostic: torch.Tensor | None = None,
        agnostic_mask: torch.Tensor | None = None,
        meta: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """``preds``, ``target``, ``counterfactual``, ``agnostic`` ``(B, 3, T, H, W)``; masks ``(B, 1, T, H, W)``;
        ``actions`` one list of ``{start, end, text}`` per clip; ``meta`` one dict per clip."""
        if actions is None:
            raise ValueError(
                "InteractionSuccessRate needs the batch key 'actions' (a list of action lists, one per clip)"
            )
        if len(actions) != preds.shape[0]:
            raise ValueError(f"InteractionSuccessRate: {len(actions)} action lists for {preds.shape[0]} clips")
        if meta is not None and len(meta) != preds.shape[0]:
            raise ValueError(f"InteractionSuccessRate: {len(meta)} 'meta' entries for {preds.shape[0]} clips")
        for i, acts in enumerate(actions):
            family = clip_family(meta[i] if meta is not None else None)
            index = FAMILIES.index(family)
            clip = JudgedClip(
                generated=preds[i],
                actions=list(acts),
                video=target[i] if target is not None else None,
                counterfactual=counterfactual[i] if counterfactual is not None else None,
                interaction_mask=interaction_mask[i] if interaction_mask is not None else None,
                caption=caption[i] if caption is not None else None,
                agnostic_mask=agnostic_mask[i] if agnostic_mask is not None else None,
                family=family,
            )
            self.family_clips[index] += 1
            self._count(clip, index)
            if agnostic is not None:
                clip.generated = agnostic[i]
                self._count(clip, index, "chance_")

    def compute(self) -> dict[str, torch.Tensor]:
        def ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a.double() / b if int(b) > 0 else torch.tensor(float("nan"), dtype=torch.float64, device=a.device)

        out = {
            "value": ratio(self.successes, self.interactions),
            "false_interaction_rate": ratio(self.false_interactions, self.passive_clips),
            "interactions": self.interactions.clone(),
            "passive_clips": self.passive_clips.clone(),
        }
        chance = int(self.chance_interactions + self.chance_passive_clips) > 0
        if chance:
            out["chance"] = ratio(self.chance_successes, self.chance_interactions)
            out["false_interaction_rate_chance"] = ratio(self.chance_false_interactions, self.chance_passive_clips)
        if any(
            int(self.family_clips[i]) > 0 for i, f in enumerate(FAMILIES) if f != STANDARD
        ):  # a benchmark family was seen
            for i, family in enumerate(FAMILIES):
                if int(self.family_clips[i]) == 0:
                    continue
                out[family] = ratio(self.family_successes[i], self.family_interactions[i])
                if chance:
                    out[f"{family}_chance"] = ratio(self.family_chance_successes[i], self.family_chance_interactions[i])
                if int(self.family_passive_clips[i]) > 0:
                    out[f"false_interaction_rate_{family}"] = ratio(
                        self.family_false_interactions[i], self.family_passive_clips[i]
                    )
        return out

    def describe(self) -> dict:
        extra = self.judge.describe() if hasattr(self.judge, "describe") else {}
        return {
            "judge": self.judge.name,
            "unit": "one action span",
            "chance": "the judge on the 'agnostic' input",
            **extra,
        }
