"""The interactive manifest: writing a split, reading it back exactly, and clear errors for bad records."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from itryon.data.contract import collate
from itryon.data.manifest import InteractiveManifestDataset, ManifestError, read_manifest
from itryon.data.synthetic import SyntheticTryOnDataset, write_split


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    write_split(out, "val", 3, seed=1)
    return out


def _assert_same(a: dict, b: dict) -> None:
    for key, value in a.items():
        if torch.is_tensor(value):
            assert torch.equal(value, b[key]), key
    assert a["caption"] == b["caption"] and a["actions"] == b["actions"]
    assert {k: v for k, v in b["meta"].items() if k not in ("manifest", "video_path")} == a["meta"]


@pytest.mark.parametrize("video_format", ["mp4", "png"])
def test_written_split_reads_back_exactly(tmp_path, video_format):
    manifest = write_split(tmp_path, "test", 3, seed=2, video_format=video_format)
    assert manifest == tmp_path / "test.jsonl"
    on_disk = InteractiveManifestDataset(manifest)
    on_the_fly = SyntheticTryOnDataset("test", num_clips=3, seed=2)
    assert len(on_disk) == 3
    for i in range(3):
        _assert_same(on_the_fly[i], on_disk[i])
    record = json.loads(manifest.read_text().splitlines()[0])
    suffix = ".mp4" if video_format == "mp4" else ""
    assert (
        record["video"] == f"test/test-s2-000000/video{suffix}"
        and record["agnostic_mask"] == "test/test-s2-000000/agnostic_mask"
    )
    assert record["garment"].endswith("garment.png") and record["fps"] == 8.0 and record["num_frames"] == 17


def test_folder_with_split_and_collate(written):
    ds = InteractiveManifestDataset(written, split="val")
    batch = collate([ds[0], ds[1]])
    assert batch["video"].shape == (2, 3, 17, 48, 64) and batch["meta"][1]["id"] == "val-s1-000001"
    assert batch["meta"][0]["manifest"] == str(written / "val.jsonl")
    with pytest.raises(ManifestError, match="is a folder: pass split="):
        InteractiveManifestDataset(written)


def test_num_frames_keeps_the_first_frames_and_cuts_actions(written):
    full = InteractiveManifestDataset(written / "val.jsonl")
    short = InteractiveManifestDataset(written / "val.jsonl", num_frames=9)
    for i in range(len(full)):
        a, b = full[i], short[i]
        assert b["video"].shape[1] == 9 and torch.equal(a["video"][:, :9], b["video"])
        expected = [
            dict(x, end=min(x["end"], 9), end_s=round(min(x["end"], 9) / 8.0, 6))
            for x in a["actions"]
            if x["start"] < 9
        ]
        assert b["actions"] == expected and torch.equal(b["interaction"], a["interaction"][:9])
    with pytest.raises(ManifestError, match=r"have fewer than num_frames=18 frames"):
        InteractiveManifestDataset(written / "val.jsonl", num_frames=18)


def _rewrite(src: Path, dst: Path, edit) -> Path:
    lines = [json.loads(line) for line in src.read_text().splitlines()]
    edit(lines)
    dst.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return dst


def test_missing_file_names_clip_and_field(written, tmp_path):
    bad = _rewrite(
        written / "val.jsonl", written / "bad_missing.jsonl", lambda rs: rs[1].update(pose="val/nowhere/pose.mp4")
    )
    with pytest.raises(
        ManifestError,
        match=r"bad_missing.jsonl:2: clip 'val-s1-000001': field 'pose' points to .*nowhere/pose.mp4, which does not exist",
    ):
        read_manifest(bad)
    bad.unlink()


@pytest.mark.parametrize(
    "action, message",
    [
        ({"start": 5, "end": 20, "text": "x"}, r"actions\[0\]: span \[5, 20\) is not inside the clip's 17 frames"),
        ({"start": 6, "end": 6, "text": "x"}, r"actions\[0\]: span \[6, 6\) is not inside"),
        ({"start": 2.0, "end": 6, "text": "x"}, r"actions\[0\]: start and end must be integer frame indices"),
        ({"start": 2, "end": 6}, r"actions\[0\]: lacks 'text'"),
        (
            {"start": 2, "end": 6, "text": "x", "start_s": 1.0},
            r"actions\[0\]: start_s=1.0 s is frame 8.00 at 8.0 fps, but the span says frame 2",
        ),
    ],
)
def test_bad_span_names_clip_and_field(written, action, message):
    bad = _rewrite(written / "val.jsonl", written / "bad_span.jsonl", lambda rs: rs[0].update(actions=[action]))
    try:
        with pytest.raises(ManifestError, match=r"bad_span.jsonl:1: clip 'val-s1-000000': " + message):
            InteractiveManifestDataset(bad)
    finally:
        bad.unlink()


def test_malformed_lines(written, tmp_path):
    good = (written / "val.jsonl").read_text().splitlines()
    path = tmp_path / "m.jsonl"
    path.write_text(good[0] + "\n{not json\n")
    with pytest.raises(ManifestError, match=r"m.jsonl:2: not valid JSON"):
        read_manifest(path, check_files=False)
    path.write_text(good[0] + "\n\n" + good[0] + "\n")
    with pytest.raises(ManifestError, match=r"m.jsonl:3: clip id 'val-s1-000000' repeats line 1"):
        read_manifest(path, check_files=False)
    record = json.loads(good[0])
    del record["agnostic"]
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(ManifestError, match=r"clip 'val-s1-000000': missing field\(s\) \['agnostic'\]"):
        read_manifest(path, check_files=False)
    with pytest.raises(ManifestError, match="no such manifest file"):
        read_manifest(tmp_path / "absent.jsonl")


def test_frame_count_mismatch_is_reported(written, tmp_path):
    bad = _rewrite(written / "val.jsonl", written / "bad_frames.jsonl", lambda rs: rs[0].update(num_frames=16))
    try:
        with pytest.raises(
            ManifestError, match=r"clip 'val-s1-000000': field 'video' has 17 frames, the record says num_frames=16"
        ):
            InteractiveManifestDataset(bad)[0]
    finally:
        bad.unlink()


def test_cli_writes_split_and_contact_sheet(tmp_path):
    from PIL import Image

    from itryon.cli import synth

    parser = argparse.ArgumentParser()
    synth.add_arguments(parser)
    args = parser.parse_args(
        [
            "--out",
            str(tmp_path),
            "--split",
            "val",
            "--num",
            "2",
            "--seed",
            "4",
            "--preview",
            "--format",
            "png",
            "--no-progress",
        ]
    )
    assert synth.run(args) == 0
    assert len(read_manifest(tmp_path / "val.jsonl")) == 2
    with Image.open(tmp_path / "val_preview.png") as sheet:
        assert sheet.size == (2 * 10 * 66, 2 * 2 * (4 * 50 + 4))


def test_disk_data_config_builds_the_datamodule(written):
    from itryon.config import instantiate, load_config, validate

    root = Path(__file__).resolve().parent.parent
    cfg = load_config(
        root / "configs/data/synthetic_disk.yaml",
        [
            f"train.manifest={written}/val.jsonl",
            f"val.manifest={written}/val.jsonl",
            f"test.manifest={written}/val.jsonl",
        ],
    )
    validate(cfg)
    datamodule = instantiate(cfg)
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["video"].shape == (2, 3, 17, 48, 64)
    assert [m["id"] for m in batch["meta"]] == ["val-s1-000000", "val-s1-000001"]
