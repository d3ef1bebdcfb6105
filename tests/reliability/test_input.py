"""No silent wrong input: each case is a clear error naming the file, clip and field, or a documented conversion."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from reliability_helpers import records, rewrite

from itryon.data.manifest import InteractiveManifestDataset, ManifestError, read_manifest
from itryon.data.video_io import VideoIOError, read_video, write_video


def _frames(n: int = 12) -> np.ndarray:
    """Frames whose first pixel says their index."""
    frames = np.zeros((n, 4, 6, 3), dtype=np.uint8)
    frames[:, 0, 0, 0] = np.arange(n) * 10
    return frames


def _folder(path: Path, names: list[str], frames: np.ndarray) -> Path:
    path.mkdir(parents=True)
    for name, frame in zip(names, frames):
        Image.fromarray(frame).save(path / name)
    return path


# ---------------------------------------------------------------------------------------------------
# frame folders


def test_unpadded_frame_names_are_read_in_numeric_order(tmp_path):
    frames = _frames(12)
    folder = _folder(tmp_path / "v", [f"{i}.png" for i in range(12)], frames)  # lexicographic: 0, 1, 10, 11, 2, ...
    assert torch.equal(read_video(folder), torch.from_numpy(frames))


def test_prefixed_frame_names_starting_at_one_are_read_in_order(tmp_path):
    frames = _frames(11)
    folder = _folder(tmp_path / "v", [f"frame_{i + 1}.png" for i in range(11)], frames)
    assert read_video(folder)[:, 0, 0, 0].tolist() == frames[:, 0, 0, 0].tolist()


def test_a_gap_in_the_frame_numbering_is_an_error(tmp_path):
    folder = _folder(tmp_path / "v", ["000000.png", "000001.png", "000003.png"], _frames(3))
    with pytest.raises(
        VideoIOError, match=r"/v: frame numbers jump from 1 \(000001.png\) to 3 \(000003.png\): frame 2 is missing"
    ):
        read_video(folder)


def test_frame_names_without_a_number_are_an_error(tmp_path):
    folder = _folder(tmp_path / "v", ["first.png", "second.png"], _frames(2))
    with pytest.raises(VideoIOError, match=r"/v: frame '(first|second).png' has no frame number"):
        read_video(folder)


def test_two_files_for_one_frame_number_are_an_error(tmp_path):
    folder = _folder(tmp_path / "v", ["1.png", "01.png"], _frames(2))
    with pytest.raises(VideoIOError, match=r"both hold frame 1"):
        read_video(folder)


def test_palette_frames_are_read_as_rgb_not_as_palette_indices(tmp_path):
    frames = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    frames[..., 0] = 200
    folder = tmp_path / "v"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(folder / f"{i:06d}.png")
    assert torch.equal(read_video(folder), torch.from_numpy(frames))


# ---------------------------------------------------------------------------------------------------
# garments and masks


def _first_clip(manifest: Path) -> tuple[dict, Path]:
    record = records(manifest)[0]
    return record, manifest.parent


def test_an_rgba_garment_is_composited_on_white(split_copy):
    record, root = _first_clip(split_copy)
    path = root / record["garment"]
    rgb = np.asarray(Image.open(path).convert("RGB"))
    alpha = np.full(rgb.shape[:2], 255, dtype=np.uint8)
    alpha[:, : rgb.shape[1] // 2] = 0  # left half transparent
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    garment = InteractiveManifestDataset(split_copy)[0]["garment"]  # [3, Hg, Wg] in [-1, 1]
    half = rgb.shape[1] // 2
    assert torch.all(garment[:, :, :half] == 1.0)  # white, not black
    assert torch.equal(
        garment[:, :, half:], torch.from_numpy(rgb[:, half:].transpose(2, 0, 1).copy()).float() / 127.5 - 1
    )


def test_a_palette_garment_is_read_as_its_colours(split_copy):
    record, root = _first_clip(split_copy)
    path = root / record["garment"]
    palette = Image.open(path).convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(path)
    garment = InteractiveManifestDataset(split_copy)[0]["garment"]
    expected = torch.from_numpy(np.asarray(palette.convert("RGB")).transpose(2, 0, 1).copy()).float() / 127.5 - 1
    assert garment.shape[0] == 3 and torch.equal(garment, expected)


def test_a_palette_garment_with_a_transparent_colour_is_white_there(split_copy):
    record, root = _first_clip(split_copy)
    path = root / record["garment"]
    image = Image.new("P", (8, 6), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (4, 0, 8, 6))
    image.info["transparency"] = 0
    image.save(path, transparency=0)
    ds = InteractiveManifestDataset(
        split_copy, transforms=[__import__("itryon.data.transforms", fromlist=["Resize"]).Resize(48, 64, 6, 8)]
    )
    garment = ds[0]["garment"]
    assert (
        torch.all(garment[:, :, :4] == 1.0)
        and torch.all(garment[0, :, 4:] == 1.0)
        and torch.all(garment[1:, :, 4:] == -1.0)
    )


def test_a_mask_stored_as_0_and_1_is_read_as_a_mask(split_copy):
    record, root = _first_clip(split_copy)
    folder = root / record["agnostic_mask"]
    before = InteractiveManifestDataset(split_copy)[0]["agnostic_mask"]
    assert before.sum() > 0
    for f in sorted(folder.iterdir()):
        Image.fromarray((np.asarray(Image.open(f)) > 127).astype(np.uint8)).save(f)  # 0/1 instead of 0/255
    after = InteractiveManifestDataset(split_copy)[0]["agnostic_mask"]
    assert torch.equal(after, before)


def test_a_garment_mask_stored_as_0_and_1_is_read_as_a_mask(split_copy):
    record, root = _first_clip(split_copy)
    path = root / record["garment_mask"]
    before = InteractiveManifestDataset(split_copy)[0]["garment_mask"]
    Image.fromarray((np.asarray(Image.open(path)) > 127).astype(np.uint8)).save(path)
    assert torch.equal(InteractiveManifestDataset(split_copy)[0]["garment_mask"], before) and before.sum() > 0


# ---------------------------------------------------------------------------------------------------
# record fields


def _bad(split: Path, tmp_path: Path, edit) -> Path:
    dst = split.parent / f"bad-{tmp_path.name}.jsonl"  # next to the split, so that its relative paths resolve
    return rewrite(split, dst, edit)


@pytest.mark.parametrize(
    "value, shown",
    [(float("nan"), "float nan"), (float("inf"), "float inf"), (True, "bool True"), (0, "int 0"), ("8", "str '8'")],
    ids=["nan", "inf", "bool", "zero", "string"],
)
def test_a_bad_fps_names_the_clip(split, tmp_path, value, shown):
    bad = _bad(split, tmp_path, lambda rs: rs[1].update(fps=value))
    try:
        with pytest.raises(
            ManifestError, match=rf":2: clip 'val-s1-000001': 'fps' must be a positive finite number, got {shown}"
        ):
            read_manifest(bad)
    finally:
        bad.unlink()


def test_nan_seconds_in_a_span_name_the_action(split, tmp_path):
    def edit(rs):
        rs[0]["actions"] = [{"start": 1, "end": 3, "text": "lifts the hem", "start_s": float("nan")}]

    bad = _bad(split, tmp_path, edit)
    try:
        with pytest.raises(
            ManifestError,
            match=r"clip 'val-s1-000000': actions\[0\]: start_s must be a finite number of seconds, got float nan",
        ):
            read_manifest(bad)
    finally:
        bad.unlink()


@pytest.mark.parametrize(
    "value, shown", [(None, "null"), (7, "int 7"), (["a"], r"list \['a'\]")], ids=["null", "number", "list"]
)
def test_a_caption_that_is_not_a_string_is_an_error(split, tmp_path, value, shown):
    bad = _bad(split, tmp_path, lambda rs: rs[0].update(caption=value))
    try:
        with pytest.raises(ManifestError, match=rf"clip 'val-s1-000000': 'caption' must be a string .*got {shown}"):
            read_manifest(bad)
    finally:
        bad.unlink()


@pytest.mark.parametrize("value, shown", [(None, "null"), (3, "int 3")], ids=["null", "number"])
def test_an_action_text_that_is_not_a_string_is_an_error(split, tmp_path, value, shown):
    bad = _bad(split, tmp_path, lambda rs: rs[0].update(actions=[{"start": 1, "end": 3, "text": value}]))
    try:
        with pytest.raises(
            ManifestError, match=rf"clip 'val-s1-000000': actions\[0\]: 'text' must be a string, got {shown}"
        ):
            read_manifest(bad)
    finally:
        bad.unlink()


def test_a_misspelt_optional_field_is_an_error_at_construction(split, tmp_path):
    def edit(rs):
        rs[2]["hand_priors"] = rs[2].pop("hand_prior")

    bad = _bad(split, tmp_path, edit)
    try:
        with pytest.raises(
            ManifestError, match=r":3: clip 'val-s1-000002': unknown field 'hand_priors'; did you mean 'hand_prior'\?"
        ):
            InteractiveManifestDataset(bad)
    finally:
        bad.unlink()


def test_an_empty_manifest_is_an_error_naming_it(tmp_path):
    empty = tmp_path / "train.jsonl"
    empty.write_text("\n")
    with pytest.raises(ManifestError, match=rf"{empty}: the manifest holds no clips"):
        InteractiveManifestDataset(empty)


def test_an_empty_manifest_in_a_training_config_stops_before_training(tmp_path, capsys):
    from reliability_helpers import DISK, disk_overrides, one_line_error

    from itryon.cli.train import main

    empty = tmp_path / "train.jsonl"
    empty.write_text("")
    assert main(["--config", str(DISK), *disk_overrides(empty), f"output_dir={tmp_path}"]) == 2
    err = one_line_error(capsys.readouterr().err)
    assert f"{empty}: the manifest holds no clips" in err and "num_samples" not in err


# ---------------------------------------------------------------------------------------------------
# itryon evaluate


def test_evaluate_reads_unpadded_prediction_frames_in_order(tmp_path):
    from itryon.cli import evaluate

    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    write_video(tmp_path / "gt" / "clip.mp4", video, lossless=True)
    _folder(tmp_path / "pred" / "clip", [f"{i}.png" for i in range(12)], video)  # 0.png .. 11.png
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    out = tmp_path / "m.json"
    args = parser.parse_args(
        [
            "--pred",
            str(tmp_path / "pred"),
            "--gt",
            str(tmp_path / "gt"),
            "--metrics",
            "psnr,ssim",
            "--out",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert evaluate.run(args) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["ssim"] == pytest.approx(1.0) and (
        metrics["psnr"] is None or metrics["psnr"] > 60 or math.isinf(metrics["psnr"])
    )


def test_evaluate_names_a_prediction_folder_with_a_gap(tmp_path, capsys):
    from itryon.cli import evaluate

    video = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    write_video(tmp_path / "gt" / "clip.mp4", video, lossless=True)
    _folder(tmp_path / "pred" / "clip", ["0.png", "1.png", "3.png"], video)
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(
        [
            "--pred",
            str(tmp_path / "pred"),
            "--gt",
            str(tmp_path / "gt"),
            "--out",
            str(tmp_path / "m.json"),
            "--no-progress",
        ]
    )
    assert evaluate.run(args) == 2
    assert "pred/clip: frame numbers jump from 1 (1.png) to 3 (3.png)" in capsys.readouterr().err
