"""The synthetic interactive try-on world: determinism, counterfactuals, ambiguity, masks, spans and splits."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from itryon.data.contract import collate, validate_sample
from itryon.data.synthetic import HELD_OUT_COMBINATION, ClipSpec, SyntheticTryOnDataset, contact_sheet, generate_clip
from itryon.data.synthetic.captions import frames_to_seconds, seconds_to_frames
from itryon.data.synthetic.plan import plan_clip
from itryon.data.synthetic.raster import Box, Layer, disk_offsets, over, pixel_grid, stamp
from itryon.data.synthetic.seeding import clip_key
from itryon.data.synthetic.splits import GLYPH_LETTERS, SPLITS, glyph_letters, hue_sectors, texture_variants

PIXEL_KEYS = (
    "video",
    "counterfactual",
    "agnostic",
    "agnostic_mask",
    "pose",
    "hand_prior",
    "interaction_mask",
    "counterfactual_mask",
    "garment",
    "garment_mask",
)


def _clip(index: int, split: str = "train", **kwargs):
    return generate_clip(split, index, 0, **kwargs)


def _find(predicate, split: str = "train", limit: int = 200, **kwargs):
    """The first clip index whose plan satisfies ``predicate``."""
    for index in range(limit):
        if predicate(plan_clip(split, index, 0, ClipSpec(), **kwargs)):
            return index
    raise AssertionError("no clip satisfies the predicate")


# determinism -----------------------------------------------------------------------------------------


def test_same_key_gives_identical_bytes_and_other_keys_differ():
    a, b = _clip(5), _clip(5)
    for key in PIXEL_KEYS:
        assert a[key].dtype == np.uint8 and a[key].tobytes() == b[key].tobytes(), key
    assert a["caption"] == b["caption"] and a["actions"] == b["actions"] and a["meta"] == b["meta"]
    assert _clip(6)["video"].tobytes() != a["video"].tobytes()
    assert generate_clip("train", 5, 1)["video"].tobytes() != a["video"].tobytes()
    assert generate_clip("val", 5, 0)["video"].tobytes() != a["video"].tobytes()


def test_pixels_match_a_recorded_digest():
    # Recorded with numpy 2.4; renders use only exactly rounded float32 operations per pixel and libm for
    # per-frame scalars, so any machine gives these bytes. A change here means the world itself changed.
    clip = generate_clip("test", 7, 3, ClipSpec(num_frames=9, height=24, width=32))
    digest = hashlib.sha256()
    for key in sorted(PIXEL_KEYS):
        digest.update(clip[key].tobytes())
    assert digest.hexdigest() == "f1b8d6f7afdb07221a91fb38376e1fc8a79dea1a868d2f6a5e6007cd77a16a7c"


@pytest.mark.parametrize(
    "split, index, seed, spec, expected",
    [
        # a jacket with a zipper pulled down and a stretch, at the default size
        ("train", 32, 0, ClipSpec(), "411ea23d410c9e39e3585b66798c9a518d3a6113a989c9f76367df6f7fc2a2ce"),
        # a passive gesture (its counterfactual deforms the garment)
        ("train", 6, 0, ClipSpec(), "71367ce465ad70323a2961717130e251b9c5a784d9f27daeb7d3afc38cc1287e"),
        (
            "val",
            11,
            2,
            ClipSpec(garment_size=(40, 30)),
            "7ff643c98522fe469daf1ac8c55d42f81c337c8839413b00070d05886defe559",
        ),
        # frames smaller than the parts' boxes: every box is clipped to the frame
        (
            "test",
            4,
            1,
            ClipSpec(num_frames=6, height=12, width=10),
            "a6f270b4512ab8afe881083e4e045ea994873d4decdd22cbf3cf03811f2af87c",
        ),
    ],
)
def test_default_size_pixels_match_digests_of_the_full_frame_render(split, index, seed, spec, expected):
    # Recorded when every layer was drawn on the whole frame: drawing each part only on its box must not
    # change a byte (outside its box a part has zero coverage).
    clip = generate_clip(split, index, seed, spec)
    digest = hashlib.sha256()
    for key in sorted(PIXEL_KEYS):
        digest.update(clip[key].tobytes())
    assert digest.hexdigest() == expected


def test_drawing_each_part_on_its_box_equals_drawing_it_on_the_whole_frame(monkeypatch):
    # every part has zero coverage outside the box it is drawn on, so full-frame boxes change no byte
    cases = [
        ("train", _find(lambda p, k=k: not p.passive and any(e.kind == k for e in p.events)), 0, ClipSpec(), {})
        for k in ("stretch_sideways", "pull_zipper_down", "lift_hem", "tug_collar")
    ]
    cases += [
        ("test", 3, 2, ClipSpec(), {"passive": True}),
        ("val", 5, 1, ClipSpec(num_frames=7, height=96, width=128), {}),
        ("train", 8, 4, ClipSpec(num_frames=6, height=12, width=10), {}),
    ]
    boxed = [generate_clip(split, index, seed, spec, **options) for split, index, seed, spec, options in cases]
    monkeypatch.setattr(
        Box, "around", classmethod(lambda cls, points, margin, height, width: cls(0, height, 0, width, height, width))
    )
    for (split, index, seed, spec, options), clip in zip(cases, boxed):
        whole = generate_clip(split, index, seed, spec, **options)
        for key in PIXEL_KEYS:
            assert whole[key].tobytes() == clip[key].tobytes(), (split, index, key)


def test_box_views_clip_to_the_frame_and_unite():
    points = np.array([[[3.2, 4.9], [10.5, 2.1]], [[-4.0, 6.0], [9.0, 7.5]]])  # (T, N, 2) pixel x, y
    box = Box.around(points, 1.5, height=8, width=12)
    assert (box.y0, box.y1, box.x0, box.x1) == (
        0,
        8,
        0,
        12,
    )  # floor(2.1 - 1.5) = 0; y1 = floor(7.5 + 1.5) + 2 = 11 -> 8
    box = Box.around(points[:1], 0.5, height=8, width=12)
    assert (box.y0, box.y1, box.x0, box.x1) == (1, 7, 2, 12)
    full = np.arange(2 * 8 * 12, dtype=np.float32).reshape(2, 8, 12)
    view = box.of(full)
    assert view.shape == (2, 6, 10) and np.shares_memory(view, full) and view[1, 0, 0] == full[1, 1, 2]
    px, py = pixel_grid(8, 12)
    assert np.array_equal(box.px, px[1:7, 2:12]) and box.py[0, 0] == np.float32(1.5 / 8)
    assert box.px[0, 0] == np.float32((2 + 0.5 - 6) / 8)
    other = Box(6, 8, 0, 3, 8, 12)
    union = box.union(other)
    assert (union.y0, union.y1, union.x0, union.x1) == (1, 8, 0, 12)
    assert Box(5, 5, 0, 3, 8, 12).empty and box.union(Box(5, 5, 0, 3, 8, 12)) is box
    assert other.within(union) == (slice(5, 7), slice(0, 3))


def test_stamp_keeps_the_highest_label_in_any_order():
    labels = np.zeros((2, 4, 5), dtype=np.uint8)
    x = np.array([[0.2, 0.9, 4.99, 6.0], [2.5, 2.5, -0.5, 1.0]])  # (T, N) pixel x
    y = np.array([[0.5, 0.5, 3.0, 1.0], [1.0, 1.0, 1.0, 4.0]])
    stamp(labels, x, y, np.array([3, 2, 7, 9]), disk_offsets(0.5))
    expected = np.zeros_like(labels)
    expected[0, 0, 0] = 3  # labels 3 and 2 share pixel (0, 0): the higher one stays
    expected[0, 3, 4] = 7  # x = 6.0 and y = 4.0 lie outside the frame and are dropped
    expected[1, 1, 2] = 3  # frame 1: labels 3 and 2 again, in the same pixel
    assert np.array_equal(labels, expected)
    stamp(labels, np.array([[4.0], [0.0]]), np.array([[3.0], [0.0]]), 1, disk_offsets(1.0))  # plus-shaped dots
    assert (
        labels[0, 3, 4] == 7
        and labels[0, 2, 4] == 1
        and labels[0, 3, 3] == 1
        and labels[1, 0, 0] == 1
        and labels[1, 1, 0] == 1
    )


def test_over_and_layer_composite_in_place():
    image = np.full((3, 2, 2), 0.25, dtype=np.float32)
    alpha = np.array([[0.0, 1.0], [0.5, 0.75]], dtype=np.float32)
    out = over(image, (1.0, 0.5, 0.0), alpha)
    assert out is image
    np.testing.assert_array_equal(image[:, 0, 0], [0.25, 0.25, 0.25])
    np.testing.assert_array_equal(image[:, 1, 0], [0.625, 0.375, 0.125])  # 0.25 + 0.5 * (c - 0.25)
    np.testing.assert_array_equal(image[:, 0, 1], [1.0, 0.5, 0.0])
    layer = Layer((2, 2))
    layer.view(Box(0, 1, 0, 2, 2, 2)).paint((1.0, 0.0, 0.0), np.array([[0.5, 1.0]], dtype=np.float32))
    np.testing.assert_array_equal(layer.alpha, [[0.5, 1.0], [0.0, 0.0]])
    base = np.zeros((3, 2, 2), dtype=np.float32)
    assert layer.composite(base) is base
    np.testing.assert_array_equal(base[0], [[0.5, 1.0], [0.0, 0.0]])


def test_clip_key_is_a_stable_hash_not_python_hash():
    # BLAKE2b of "itryon-synthetic/train/0/0": fixed across processes and machines (Python's hash() is salted)
    expected = int.from_bytes(hashlib.blake2b(b"itryon-synthetic/train/0/0", digest_size=16).digest(), "little")
    assert clip_key("train", 0, 0) == expected
    assert clip_key("train", 0, 0) != clip_key("val", 0, 0) != clip_key("train", 1, 0)


def test_dataset_items_are_contract_samples_and_repeat_exactly():
    ds = SyntheticTryOnDataset("train", num_clips=3, seed=0)
    a, b = ds[2], ds[2]
    validate_sample(a)
    for key, value in a.items():
        if torch.is_tensor(value):
            assert value.dtype == torch.float32 and torch.equal(value, b[key]), key
    assert a["video"].shape == (3, 17, 48, 64) and a["garment"].shape == (3, 48, 64)
    assert a["video"].min() >= -1 and a["video"].max() <= 1
    for key in ("agnostic_mask", "interaction_mask", "counterfactual_mask", "garment_mask"):
        assert set(a[key].unique().tolist()) <= {0.0, 1.0}, key
    meta = a["meta"]
    assert (
        meta["id"] == "train-s0-000002"
        and meta["fps"] == 8.0
        and meta["split"] == "train"
        and meta["source"] == "synthetic"
    )
    assert isinstance(meta["passive"], bool) and meta["garment_class"] in (
        "t_shirt",
        "tank_top",
        "long_sleeve",
        "jacket",
    )
    batch = collate([ds[0], ds[1]])
    assert batch["video"].shape == (2, 3, 17, 48, 64) and len(batch["actions"]) == 2
    with pytest.raises(IndexError, match="out of range for 3 clips"):
        ds[3]
    with pytest.raises(ValueError, match=r"unknown split 'dev'; expected one of \['train', 'val', 'test'\]"):
        SyntheticTryOnDataset("dev")


def test_other_sizes_and_frame_counts():
    clip = generate_clip("val", 1, 0, ClipSpec(num_frames=9, height=32, width=40, fps=4.0))
    assert clip["video"].shape == (3, 9, 32, 40) and clip["garment"].shape == (3, 32, 40)
    assert all(0 <= a["start"] < a["end"] <= 9 for a in clip["actions"])
    assert generate_clip("val", 1, 0, ClipSpec(garment_size=(40, 30)))["garment"].shape == (3, 40, 30)


# counterfactual ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lift_hem", "pull_zipper_down", "stretch_sideways", "tug_collar"])
def test_counterfactual_equals_video_outside_the_region_and_differs_inside(kind):
    index = _find(lambda p: not p.passive and any(e.kind == kind for e in p.events))
    clip = _clip(index)
    video, cf = clip["video"].astype(int), clip["counterfactual"].astype(int)
    region = clip["counterfactual_mask"][0] > 0  # (T, H, W)
    assert np.array_equal(region, clip["interaction_mask"][0] > 0)
    differs = np.any(video != cf, axis=0)
    assert not np.any(differs & ~region), "the counterfactual differs outside the interaction region"
    first = min(a["start"] for a in clip["actions"])
    assert not region[:first].any() and np.array_equal(video[:, :first], cf[:, :first])
    action = next(a for a in clip["actions"] if a["kind"] == kind)
    last = action["end"] - 1  # the deformation is strongest at the end of its span
    inside = np.abs(video[:, last] - cf[:, last]).sum(0)[region[last]]
    assert region[last].sum() >= 10 and inside.mean() > 20, (region[last].sum(), inside.mean())


def test_zipper_stays_open_and_other_actions_relax():
    index = _find(
        lambda p: (
            not p.passive and len(p.events) == 1 and p.events[0].kind == "pull_zipper_down" and p.events[0].end < 14
        )
    )
    clip = _clip(index)
    assert clip["interaction_mask"][0, -1].any(), "an opened zipper persists to the end of the clip"
    index = _find(
        lambda p: not p.passive and len(p.events) == 1 and p.events[0].kind == "lift_hem" and p.events[0].end < 13
    )
    clip = _clip(index)
    end = clip["actions"][0]["end"]
    assert clip["interaction_mask"][0, end].any() and not clip["interaction_mask"][0, end + 2 :].any()
    assert np.array_equal(clip["video"][:, end + 2 :], clip["counterfactual"][:, end + 2 :])


# ambiguity by design -------------------------------------------------------------------------------------


def test_passive_and_interactive_versions_share_pose_but_not_hand_prior():
    index = _find(lambda p: len(p.events) >= 1, passive=False)
    active, passive = generate_clip("train", index, 0, passive=False), generate_clip("train", index, 0, passive=True)
    assert np.array_equal(active["pose"], passive["pose"]), "the 2D pose must be identical"
    assert active["caption"] != passive["caption"] and "without touching" in passive["caption"]
    prior_diff = np.abs(active["hand_prior"].astype(int) - passive["hand_prior"].astype(int))
    assert prior_diff.max() > 60, "the hand prior must tell touching from hovering"
    span = passive["meta"]["counterfactual_actions"][0]
    frames = slice(span["start"], span["end"])
    # depth channel: a touching hand is brighter than the same hand hovering in front of the garment
    assert active["hand_prior"][2, frames].astype(int).sum() > passive["hand_prior"][2, frames].astype(int).sum()
    assert passive["actions"] == [] and not passive["interaction_mask"].any()
    assert passive["meta"]["counterfactual_actions"] == active["actions"]
    # the passive clip's garment is unchanged; its counterfactual shows the false interaction
    region = passive["counterfactual_mask"][0] > 0
    differs = np.any(passive["video"] != passive["counterfactual"], axis=0)
    assert region.any() and differs.any() and not np.any(differs & ~region)
    hand_depth = np.asarray(passive["meta"]["hand_depth"])
    assert hand_depth.min() > 0.05 and not np.any(passive["meta"]["hand_contact"])
    assert np.any(active["meta"]["hand_contact"]) and np.asarray(active["meta"]["hand_depth"]).min() == 0.0


def test_passive_share_follows_passive_fraction():
    flags = [plan_clip("train", i, 0, ClipSpec(passive_fraction=0.25)).passive for i in range(400)]
    assert 0.18 < np.mean(flags) < 0.32
    assert not any(plan_clip("train", i, 0, ClipSpec(passive_fraction=0.0)).passive for i in range(50))


# masks ----------------------------------------------------------------------------------------------------


def test_conditions_are_garment_agnostic_and_masks_cover_the_garment():
    index = _find(lambda p: len(p.events) == 0, passive=False)
    a = generate_clip("train", index, 0, passive=False, garment_class="tank_top")
    b = generate_clip("train", index, 0, passive=False, garment_class="jacket")
    for key in ("pose", "hand_prior", "agnostic_mask", "agnostic"):
        assert np.array_equal(a[key], b[key]), f"{key} depends on the garment"
    differs = np.any(a["video"] != b["video"], axis=0)
    assert differs.sum() > 500 and not np.any(differs & ~(a["agnostic_mask"][0] > 0))


def test_masks_cover_what_they_claim():
    for index in range(6):
        clip = _clip(index)
        agnostic = clip["agnostic_mask"][0] > 0
        # agnostic video: grey (128) exactly where masked, the video elsewhere
        assert np.all(clip["agnostic"][:, agnostic] == 128)
        assert np.array_equal(clip["agnostic"][:, ~agnostic], clip["video"][:, ~agnostic])
        # hands (the hand prior's support) and the interaction region lie in the masked region
        hands = np.any(clip["hand_prior"] != 128, axis=0)
        assert hands.any() and not np.any(hands & ~agnostic)
        assert not np.any((clip["counterfactual_mask"][0] > 0) & ~agnostic)
        # in-shop garment: white outside its mask, not white inside
        g, m = clip["garment"].astype(int), clip["garment_mask"][0] > 0
        assert m.mean() > 0.15 and g[:, ~m].min() == 255 and g[:, m].mean() < 230
        # pose: black background, coloured skeleton
        assert (clip["pose"].sum(0) > 0).mean() < 0.2 and clip["pose"].max() == 255


def test_hand_prior_is_exactly_zero_off_the_hands():
    sample = SyntheticTryOnDataset("train", 1)[0]
    prior = sample["hand_prior"]
    off = (prior == 0).all(dim=0)
    assert 0.9 < off.float().mean() < 1.0
    assert (prior[2][~off] > 0).float().mean() > 0.9  # hands have positive closeness shading


# spans and captions -----------------------------------------------------------------------------------------


def test_spans_round_trip_between_frames_and_seconds():
    for fps in (8.0, 12.5, 30.0):
        for frame in range(0, 40):
            assert seconds_to_frames(frames_to_seconds(frame, fps), fps) == frame
    clip = generate_clip("train", _find(lambda p: not p.passive and len(p.events) == 2), 0, ClipSpec(fps=12.0))
    for a in clip["actions"]:
        assert a["start_s"] == round(a["start"] / 12.0, 6) and a["end_s"] == round(a["end"] / 12.0, 6)
        assert seconds_to_frames(a["start_s"], 12.0) == a["start"] and seconds_to_frames(a["end_s"], 12.0) == a["end"]
        assert a["text"].startswith("The person ") and a["hand"] in a["text"]
    sample = SyntheticTryOnDataset("train", 64)[_find(lambda p: not p.passive and len(p.events) == 2)]
    expected = torch.zeros(17)
    for a in sample["actions"]:
        expected[a["start"] : a["end"]] = 1
    assert torch.equal(sample["interaction"], expected)
    first, second = sample["actions"]
    assert first["end"] <= second["start"], "two actions of a clip do not overlap"


def test_captions_describe_person_garment_scene_and_actions():
    index = _find(lambda p: not p.passive and any(e.kind == "pull_zipper_down" for e in p.events))
    clip = _clip(index)
    assert "zip jacket" in clip["caption"] and "skin" in clip["caption"] and "in front of" in clip["caption"]
    texts = [a["text"] for a in clip["actions"]]
    assert any("pulls the zipper of the zip jacket down with the" in t for t in texts)


# splits -------------------------------------------------------------------------------------------------------


def test_split_partitions_are_disjoint_and_complete():
    for table, size in ((hue_sectors, 24), (texture_variants, 24)):
        parts = [set(table(s)) for s in SPLITS]
        assert sum(len(p) for p in parts) == size and set.union(*parts) == set(range(size))
    letters = [set(glyph_letters(s)) for s in SPLITS]
    assert set.union(*letters) == set(GLYPH_LETTERS) and sum(len(x) for x in letters) == len(GLYPH_LETTERS)


def test_generated_splits_use_disjoint_textures_palettes_and_letters():
    seen = {}
    for split in SPLITS:
        plans = [plan_clip(split, i, 0, ClipSpec()) for i in range(80)]
        seen[split] = (
            {p.garment.texture.texture_id for p in plans},
            {s for p in plans for s in p.garment.texture.sectors},
            {p.garment.texture.letter for p in plans if p.garment.texture.pattern == "logo"},
        )
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            for part, name in enumerate(("textures", "palettes", "logo letters")):
                assert not seen[a][part] & seen[b][part], f"{a} and {b} share {name}"


def test_held_out_combination_only_in_test():
    action, garment_class = HELD_OUT_COMBINATION

    def count(split):
        plans = [plan_clip(split, i, 0, ClipSpec(), garment_class=garment_class) for i in range(150)]
        return sum(e.kind == action for p in plans for e in p.events)

    assert count("train") == 0 and count("val") == 0
    assert count("test") >= 10


def test_contact_sheet_lays_out_clips_rows_and_frames():
    clips = [_clip(i) for i in range(2)]
    sheet = contact_sheet(clips, max_frames=5, scale=1)
    assert sheet.dtype == np.uint8 and sheet.shape == (2 * (4 * 50 + 4), 6 * 66, 3)
    # clip 0, counterfactual row (the 4th), first frame column; the garment leads the clip's rows
    assert np.array_equal(
        sheet[3 * 50 : 3 * 50 + 48, 66 : 66 + 64], clips[0]["counterfactual"][:, 0].transpose(1, 2, 0)
    )
    assert np.array_equal(sheet[0:48, 0:64], clips[0]["garment"].transpose(1, 2, 0))


def test_cached_items_equal_generated_items_and_skip_generation(monkeypatch):
    from itryon.data.synthetic import dataset as dataset_module

    plain = SyntheticTryOnDataset("train", 3, 0, families=["standard", "contact"])
    cached = SyntheticTryOnDataset("train", 3, 0, families=["standard", "contact"], cache=True)
    first = [cached[i] for i in range(3)]
    expected = [plain[i] for i in range(3)]
    calls = []
    real = dataset_module.generate_clip
    monkeypatch.setattr(dataset_module, "generate_clip", lambda *a, **k: calls.append(a) or real(*a, **k))
    first[0]["video"].zero_()  # a consumer writing into its sample does not reach the cache
    for i in range(3):
        a, b = expected[i], cached[i]
        assert calls == []  # served from memory
        assert a.keys() == b.keys() and a["caption"] == b["caption"] and a["actions"] == b["actions"]
        for key, value in a.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, b[key]), key
