"""Benchmark families of the synthetic world: each pair differs only in what its family isolates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from itryon.data.synthetic import ClipSpec, SyntheticTryOnDataset, generate_clip, write_split
from itryon.data.synthetic.families import BENCHMARK_FAMILIES, family_mix, mixed_clip

INPUTS = ("agnostic", "agnostic_mask", "pose", "hand_prior", "garment", "garment_mask")


def _pair(family: str, pair: int):
    return generate_clip("val", 2 * pair, 1, family=family), generate_clip("val", 2 * pair + 1, 1, family=family)


def _differing(a, b, keys=INPUTS):
    return [k for k in keys if a[k].tobytes() != b[k].tobytes()]


def test_standard_clips_are_unchanged_by_the_family_argument():
    for family in (None, "standard"):
        a, b = generate_clip("train", 6, 0, family=family), generate_clip("train", 6, 0)
        assert all(
            a[k].tobytes() == b[k].tobytes() for k in ("video", "counterfactual", "hand_prior", "interaction_mask")
        )
        assert a["meta"] == b["meta"] and "family" not in a["meta"]


@pytest.mark.parametrize("pair", [0, 1, 2])
def test_contact_pairs_differ_only_in_depth(pair):
    touch, hover = _pair("contact", pair)
    assert _differing(touch, hover) == ["hand_prior"]  # same 2D pose, same hand in the video, same agnostic input
    assert touch["actions"] and not hover["actions"] and hover["meta"]["passive"]
    assert touch["meta"]["hand_grip"] == hover["meta"]["hand_grip"]  # the hovering hand keeps the action's grip
    assert (
        max(max(d) for d in hover["meta"]["hand_depth"]) > 0.1
        and min(min(d) for d in touch["meta"]["hand_depth"]) == 0.0
    )
    assert not any(any(c) for c in hover["meta"]["hand_contact"])
    # the hand prior differs only in its depth shading (channel 2), where the hand is
    prior_a, prior_b = touch["hand_prior"].astype(int), hover["hand_prior"].astype(int)
    assert np.array_equal(prior_a[:2], prior_b[:2]) and (prior_a[2] > prior_b[2]).any()
    # each one's counterfactual is the other's video
    assert (
        touch["counterfactual"].tobytes() == hover["video"].tobytes()
        and hover["counterfactual"].tobytes() == touch["video"].tobytes()
    )
    assert "hovers just in front of" in hover["caption"] and "hovers" not in touch["caption"]
    assert (touch["meta"]["variant"], hover["meta"]["variant"]) == ("contact", "hover")


@pytest.mark.parametrize("pair", [0, 1, 2])
def test_caption_pairs_differ_only_in_the_action_caption(pair):
    lift, stretch = _pair("caption", pair)
    assert _differing(lift, stretch) == [] and lift["caption"] == stretch["caption"]
    assert [a["kind"] for a in lift["actions"]] == ["pinch_lift_hem"] and [a["kind"] for a in stretch["actions"]] == [
        "pinch_stretch_hem"
    ]
    assert {k: v for k, v in lift["actions"][0].items() if k not in ("kind", "text")} == {
        k: v for k, v in stretch["actions"][0].items() if k not in ("kind", "text")
    }
    assert lift["counterfactual"].tobytes() == stretch["video"].tobytes()
    assert lift["meta"]["counterfactual_actions"][0]["kind"] == "pinch_stretch_hem"
    assert any(any(c) for c in lift["meta"]["hand_contact"])
    different = np.abs(lift["video"].astype(int) - lift["counterfactual"].astype(int)).max(0) > 12  # (T, H, W)
    assert different.sum() > 50 and not (different & (lift["interaction_mask"][0] == 0)).any()


@pytest.mark.parametrize("pair", [0, 1, 2])
def test_timing_pairs_differ_only_in_which_span_gets_which_response(pair):
    first, second = _pair("timing", pair)
    assert _differing(first, second) == [] and first["caption"] == second["caption"]
    kinds = [a["kind"] for a in first["actions"]]
    assert kinds == ["pinch_lift_hem", "pinch_stretch_hem"] and [a["kind"] for a in second["actions"]] == kinds[::-1]
    assert [(a["start"], a["end"]) for a in first["actions"]] == [(a["start"], a["end"]) for a in second["actions"]]
    assert first["actions"][0]["end"] <= first["actions"][1]["start"]
    assert sorted(a["text"] for a in first["actions"]) == sorted(
        a["text"] for a in second["actions"]
    )  # the same two captions
    assert first["counterfactual"].tobytes() == second["video"].tobytes()
    contact = np.array(first["meta"]["hand_contact"]).any(axis=0)  # (T,)
    assert all(contact[a["start"] : a["end"]].all() for a in first["actions"])  # in contact in both spans


def test_family_clips_have_their_own_ids_and_meta():
    clip = generate_clip("test", 5, 2, family="timing")
    assert clip["meta"]["id"] == "test-timing-s2-000005"
    assert (clip["meta"]["family"], clip["meta"]["variant"], clip["meta"]["pair"]) == ("timing", "stretch_first", 2)
    assert generate_clip("test", 5, 2, family="caption")["video"].tobytes() != clip["video"].tobytes()


def test_family_errors():
    with pytest.raises(
        ValueError, match=r"unknown clip family 'tilt'; expected one of \['standard', 'contact', 'caption', 'timing'\]"
    ):
        generate_clip("val", 0, family="tilt")
    with pytest.raises(ValueError, match="passive cannot be forced for family 'contact'"):
        generate_clip("val", 0, family="contact", passive=True)
    with pytest.raises(ValueError, match="family 'timing' needs clips of at least 10 frames, got 9"):
        generate_clip("val", 0, 0, ClipSpec(num_frames=9), family="timing")
    with pytest.raises(ValueError, match="a family mix needs at least one family"):
        family_mix([])


def test_dataset_mixes_families_in_turn():
    ds = SyntheticTryOnDataset("val", 8, 1, families=["standard", *BENCHMARK_FAMILIES])
    metas = [ds[i]["meta"] for i in range(8)]
    assert [m.get("family", "standard") for m in metas] == ["standard", "contact", "caption", "timing"] * 2
    assert metas[0]["id"] == "val-s1-000000" and metas[5]["id"] == "val-contact-s1-000001"
    assert mixed_clip(7, ("standard", *BENCHMARK_FAMILIES)) == ("timing", 1)
    single = SyntheticTryOnDataset("val", 2, 1, families="caption")
    assert single[1]["meta"]["variant"] == "stretch" and single[1]["counterfactual"].shape == (3, 17, 48, 64)


def test_synth_writes_family_manifests(tmp_path, capsys):
    from itryon.cli.main import main as itryon

    manifest = write_split(
        tmp_path / "a", "test", 3, 0, ClipSpec(num_frames=10, height=24, width=32), families=["contact", "timing"]
    )
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["meta"]["family"] for r in records] == ["contact", "timing", "contact"]
    assert [r["id"] for r in records] == ["test-contact-s0-000000", "test-timing-s0-000000", "test-contact-s0-000001"]
    assert records[2]["actions"] == [] and len(records[1]["actions"]) == 2
    assert (
        itryon(
            [
                "synth",
                "--out",
                str(tmp_path / "b"),
                "--split",
                "test",
                "--num",
                "1",
                "--family",
                "caption",
                "--frames",
                "10",
                "--height",
                "24",
                "--width",
                "32",
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "b" / "test.jsonl").read_text())["meta"]["variant"] == "lift"
    assert (
        itryon(["synth", "--out", str(tmp_path / "c"), "--num", "1", "--families", "contact,wobble", "--no-progress"])
        == 2
    )
    assert "--families: unknown clip family 'wobble'" in capsys.readouterr().err
