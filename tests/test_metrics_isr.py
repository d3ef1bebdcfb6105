"""Interaction success rate with the counterfactual judge and a custom judge."""

from __future__ import annotations

import math

import pytest
import torch

from itryon.metrics.isr import CounterfactualJudge, InteractionSuccessRate, JudgedClip


def _world(t=8, h=8, w=8):
    """A real clip whose garment patch brightens during the action [2, 5), and its counterfactual."""
    cf = torch.zeros(3, t, h, w)
    real = cf.clone()
    real[:, 2:5, 2:6, 2:6] = 0.8
    mask = torch.zeros(1, t, h, w)
    mask[:, 2:5, 2:6, 2:6] = 1
    return real, cf, mask


def test_counterfactual_judge_verdicts():
    real, cf, mask = _world()
    judge = CounterfactualJudge()
    action = [{"start": 2, "end": 5, "text": "lifts the hem"}]
    assert judge.judge_actions(JudgedClip(real.clone(), action, real, cf, mask)) == [True]
    assert judge.judge_actions(JudgedClip(cf.clone(), action, real, cf, mask)) == [False]
    partial = cf.clone()
    partial[:, 2:5, 2:6, 2:6] = 0.5  # more than half way towards the real response
    assert judge.judge_actions(JudgedClip(partial, action, real, cf, None)) == [True]
    partial[:, 2:5, 2:6, 2:6] = 0.3
    assert judge.judge_actions(JudgedClip(partial, action, real, cf, None)) == [False]
    # outside the action the references agree: the verdict there is undecidable
    assert judge.judge_actions(JudgedClip(real, [{"start": 6, "end": 8, "text": "x"}], real, cf, mask)) == [None]


def test_isr_counts_actions_and_passive_clips():
    real, cf, mask = _world()
    videos = torch.stack([real, cf, real, real])  # (4, 3, T, H, W) references
    counterfactuals = torch.stack([cf, cf, real, cf])  # clip 2 is passive with no contrast; clip 3 passive with contrast
    preds = torch.stack([real, cf, real, cf])  # clip 0 succeeds, 1 fails, 2 undecidable, 3 false interaction
    actions = [
        [{"start": 2, "end": 5, "text": "lifts the hem"}],
        [{"start": 2, "end": 5, "text": "lifts the hem"}],
        [],
        [],
    ]
    videos[1] = real  # clip 1's reference shows the response, its generation does not
    m = InteractionSuccessRate(CounterfactualJudge())
    m.update(preds, videos, actions=actions, counterfactual=counterfactuals, interaction_mask=torch.stack([mask] * 4))
    out = m.compute()
    assert float(out["value"]) == pytest.approx(0.5)
    assert int(out["interactions"]) == 2 and int(out["passive_clips"]) == 1
    assert float(out["false_interaction_rate"]) == pytest.approx(1.0)


def test_isr_nan_when_nothing_judged():
    out = InteractionSuccessRate(CounterfactualJudge()).compute()
    assert math.isnan(float(out["value"])) and math.isnan(float(out["false_interaction_rate"]))


class CaptionKeywordJudge:
    """A judge plugged in from outside: an action succeeds when its text mentions 'zip'."""

    name = "keyword"
    batch_keys = ("actions",)

    def judge_actions(self, clip):
        return ["zip" in a["text"] for a in clip.actions]

    def judge_passive(self, clip):
        return False


def test_custom_judge_plugs_in():
    m = InteractionSuccessRate(CaptionKeywordJudge())
    preds = torch.zeros(2, 3, 4, 2, 2)
    m.update(preds, actions=[[{"start": 0, "end": 2, "text": "pulls the zipper"}, {"start": 2, "end": 4, "text": "tugs"}], []])
    out = m.compute()
    assert float(out["value"]) == 0.5 and float(out["false_interaction_rate"]) == 0.0


def test_isr_errors():
    with pytest.raises(TypeError, match="must implement InteractionJudge"):
        InteractionSuccessRate(object())
    m = InteractionSuccessRate(CounterfactualJudge())
    with pytest.raises(ValueError, match="needs the batch key 'actions'"):
        m.update(torch.zeros(1, 3, 4, 2, 2))
    with pytest.raises(ValueError, match="needs the batch keys 'video' and 'counterfactual' for every interaction clip"):
        m.update(torch.zeros(1, 3, 4, 2, 2), actions=[[{"start": 0, "end": 2, "text": "x"}]])
