"""Interaction success rate: the counterfactual judge's two tests on toy clips, the metric's counts, families and chance."""

from __future__ import annotations

import math

import pytest
import torch

from itryon.metrics.counterfactual_judge import CounterfactualJudge, reproduction
from itryon.metrics.isr import InteractionSuccessRate, JudgedClip, clip_family

ACTION = [{"start": 2, "end": 5, "text": "lifts the hem"}]


def _world(t=8, h=8, w=8):
    """A real clip whose garment patch brightens during the action [2, 5), its counterfactual and mask."""
    cf = torch.zeros(3, t, h, w)
    real = cf.clone()
    real[:, 2:5, 2:6, 2:6] = 0.8
    mask = torch.zeros(1, t, h, w)
    mask[:, 2:5, 2:6, 2:6] = 1
    return real, cf, mask


def _towards(real, cf, share):
    return cf + share * (real - cf)


def test_contrast_test_values():
    real, cf, mask = _world()
    judge = CounterfactualJudge()
    window = slice(2, 5)
    for share, passed in (
        (1.0, True),
        (0.8, True),
        (0.72, True),
        (0.68, False),
        (0.5, False),
        (0.3, False),
        (0.0, False),
    ):
        a = judge.assess(JudgedClip(_towards(real, cf, share), ACTION, real, cf, mask), window, use_mask=True)
        assert a.contrast.share == pytest.approx(share) and a.contrast.error == pytest.approx(1 - share)
        assert (
            a.contrast.pixels == 3 * 4 and a.context is None
        )  # 3 frames of 2x2 cells; nothing moves outside the patch
        assert a.passed is passed
    # overshooting the response by 60%: the share is high but the generation is far from the real clip
    a = judge.assess(JudgedClip(_towards(real, cf, 1.6), ACTION, real, cf, mask), window, use_mask=True)
    assert a.contrast.share == pytest.approx(1.6) and a.contrast.error == pytest.approx(0.6) and not a.passed
    assert judge.judge_actions(JudgedClip(real.clone(), ACTION, real, cf, mask)) == [True]
    assert judge.judge_actions(JudgedClip(cf.clone(), ACTION, real, cf, mask)) == [False]
    # outside the action the references agree: undecidable
    assert judge.judge_actions(JudgedClip(real, [{"start": 6, "end": 8, "text": "x"}], real, cf, mask)) == [None]


def test_too_few_contrast_pixels_is_undecidable():
    _, cf, _ = _world()
    tiny = cf.clone()
    tiny[:, 2:5, 0, 0] = 0.8  # 3 pixels differ
    assert CounterfactualJudge().judge_actions(JudgedClip(tiny, ACTION, tiny, cf, None)) == [None]
    assert CounterfactualJudge(min_pixels=3).judge_actions(JudgedClip(tiny, ACTION, tiny, cf, None)) == [True]


def _moving_world(t=8, h=8, w=16):
    """As :func:`_world`, plus a bright 'hand' column that sweeps across x = 8..15 over the clip."""
    real, cf, mask = _world(t, h, w)
    for k in range(t):
        real[:, k, :, 8 + k] = 1.0
        cf[:, k, :, 8 + k] = 1.0
    return real, cf, mask


def test_context_test_rejects_a_still_hand():
    real, cf, mask = _moving_world()
    judge = CounterfactualJudge()
    still_hand = real.clone()
    still_hand[:, :, :, 8:] = real[:, :, :, 8:].mean(dim=1, keepdim=True)  # the response is there, the hand is a blur
    a = judge.assess(JudgedClip(still_hand, ACTION, real, cf, mask), slice(2, 5), use_mask=True)
    assert a.contrast.share == pytest.approx(1.0) and a.context is not None
    assert a.context.share == pytest.approx(0.0, abs=1e-6) and a.context.error == pytest.approx(1.0) and not a.passed
    assert judge.judge_actions(JudgedClip(real.clone(), ACTION, real, cf, mask)) == [True]
    assert CounterfactualJudge(use_context=False).judge_actions(JudgedClip(still_hand, ACTION, real, cf, mask)) == [
        True
    ]
    # the context test reads only where the model generates (agnostic_mask): outside it nothing is judged
    region = torch.zeros(1, *real.shape[1:])
    region[..., :8] = 1
    assert judge.judge_actions(JudgedClip(still_hand, ACTION, real, cf, mask, agnostic_mask=region)) == [True]


def test_reproduction_on_pixel_sets():
    real, cf, _ = _world()
    where = torch.zeros(real.shape[1:], dtype=torch.bool)
    where[2:5, 2:4, 2:6] = True
    r = reproduction(_towards(real, cf, 0.25), real, cf, where)  # on pixels: no pooling here
    assert (r.share, r.error, r.pixels) == (pytest.approx(0.25), pytest.approx(0.75), 24)
    empty = reproduction(real, real, real, where)
    assert math.isnan(empty.share) and not empty.passes(0.7, 0.5)


def test_passive_clip_needs_the_real_clip_to_count_as_no_false_interaction():
    # a passive clip: the real clip is still, its counterfactual shows the response
    cf, still, _ = _world()
    judge = CounterfactualJudge()
    assert judge.judge_passive(JudgedClip(still.clone(), [], still, cf)) is False
    assert judge.judge_passive(JudgedClip(cf.clone(), [], still, cf)) is True
    assert judge.judge_passive(JudgedClip(torch.full_like(still, -1.0), [], still, cf)) is True  # degenerate: fails
    assert judge.judge_passive(JudgedClip(0.5 * (still + cf), [], still, cf)) is True
    assert judge.judge_passive(JudgedClip(still, [], still, still)) is None  # nothing to contrast
    assert judge.judge_passive(JudgedClip(still, [], None, None)) is None


def test_isr_counts_actions_and_passive_clips():
    real, cf, mask = _world()
    videos = torch.stack([real, real, real, cf])  # (4, 3, T, H, W) references; clips 2 and 3 are passive
    counterfactuals = torch.stack(
        [cf, cf, real, real]
    )  # clip 2 has no contrast; clip 3 is still, its counterfactual responds
    preds = torch.stack([real, cf, real, cf])  # clip 0 succeeds, 1 fails, 2 undecidable, 3 reproduces the still clip
    actions = [ACTION, ACTION, [], []]
    m = InteractionSuccessRate(CounterfactualJudge())
    m.update(preds, videos, actions=actions, counterfactual=counterfactuals, interaction_mask=torch.stack([mask] * 4))
    out = m.compute()
    assert float(out["value"]) == pytest.approx(0.5)
    assert int(out["interactions"]) == 2 and int(out["passive_clips"]) == 1
    assert float(out["false_interaction_rate"]) == pytest.approx(0.0)
    assert "chance" not in out and "contact" not in out  # no agnostic input, no benchmark family


def test_isr_per_family_and_chance():
    real, cf, mask = _world()
    videos, cfs = torch.stack([real, real, cf, real]), torch.stack([cf, cf, real, cf])  # clip 2 is passive
    preds = torch.stack(
        [real, cf, real, real]
    )  # standard: success; caption: failure; contact passive: false interaction; timing: success
    agnostic = torch.stack([real, cf, real, cf])  # the copied input solves the first clip only
    meta = [
        {"id": "a"},
        {"id": "b", "family": "caption"},
        {"id": "c", "family": "contact"},
        {"id": "d", "family": "timing"},
    ]
    m = InteractionSuccessRate(CounterfactualJudge())
    m.update(
        preds,
        videos,
        actions=[ACTION, ACTION, [], ACTION],
        counterfactual=cfs,
        interaction_mask=torch.stack([mask] * 4),
        agnostic=agnostic,
        meta=meta,
    )
    out = {k: float(v) for k, v in m.compute().items()}
    assert out["value"] == pytest.approx(2 / 3) and out["chance"] == pytest.approx(1 / 3)
    assert (out["standard"], out["caption"], out["timing"]) == (1.0, 0.0, 1.0)
    assert (out["standard_chance"], out["caption_chance"], out["timing_chance"]) == (1.0, 0.0, 0.0)
    assert out["false_interaction_rate_contact"] == 1.0 and out["false_interaction_rate"] == 1.0
    assert out["false_interaction_rate_chance"] == 1.0  # the copied input shows the response here
    assert math.isnan(out["contact"]) and math.isnan(out["contact_chance"])  # the contact family had no action clip
    m.reset()
    assert int(m.family_clips.sum()) == 0 and math.isnan(float(m.compute()["value"]))


def test_clip_family():
    assert clip_family(None) == "standard" and clip_family({"family": "timing"}) == "timing"
    with pytest.raises(
        ValueError,
        match=r"clip 'x': meta\['family'\] is 'other'; expected one of \['standard', 'contact', 'caption', 'timing'\]",
    ):
        clip_family({"id": "x", "family": "other"})


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
    m.update(
        preds,
        actions=[[{"start": 0, "end": 2, "text": "pulls the zipper"}, {"start": 2, "end": 4, "text": "tugs"}], []],
    )
    out = m.compute()
    assert float(out["value"]) == 0.5 and float(out["false_interaction_rate"]) == 0.0


def test_isr_errors():
    with pytest.raises(TypeError, match="must implement InteractionJudge"):
        InteractionSuccessRate(object())
    with pytest.raises(ValueError, match="need 0.5 < min_share <= 1 and 0 < max_error < 1"):
        CounterfactualJudge(min_share=0.5)
    m = InteractionSuccessRate(CounterfactualJudge())
    with pytest.raises(ValueError, match="needs the batch key 'actions'"):
        m.update(torch.zeros(1, 3, 4, 2, 2))
    with pytest.raises(ValueError, match="needs the batch keys 'video' and 'counterfactual' for every judged clip"):
        m.update(torch.zeros(1, 3, 4, 2, 2), actions=[[{"start": 0, "end": 2, "text": "x"}]])
    with pytest.raises(
        ValueError, match=r"'counterfactual' has shape \(3, 4, 2, 2\), the generated video \(3, 4, 4, 4\)"
    ):
        m.update(
            torch.zeros(1, 3, 4, 4, 4),
            torch.zeros(1, 3, 4, 4, 4),
            actions=[ACTION],
            counterfactual=torch.zeros(1, 3, 4, 2, 2),
        )
    with pytest.raises(ValueError, match="2 'meta' entries for 1 clips"):
        m.update(torch.zeros(1, 3, 4, 2, 2), actions=[[]], meta=[{}, {}])
