"""Converting a folder-per-modality (ViViD-style) dataset into the interactive manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from itryon.cli.main import main as itryon
from itryon.data.convert import FolderLayout, convert_folders
from itryon.data.manifest import InteractiveManifestDataset, ManifestError
from itryon.data.synthetic import SyntheticTryOnDataset, generate_clip
from itryon.data.video_io import write_video


def last(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, 0, -1))  # [C, T, H, W] -> [T, H, W, C]


@pytest.fixture
def vivid_root(tmp_path: Path) -> Path:
    root = tmp_path / "vivid"
    for i, clip in enumerate(("clipA", "clipB")):
        arrays = generate_clip("train", i, seed=0)
        write_video(root / "videos" / f"{clip}.mp4", last(arrays["video"]), lossless=True)
        write_video(root / "agnostic" / f"{clip}.mp4", last(arrays["agnostic"]), lossless=True)
        write_video(root / "agnostic_mask" / clip, last(arrays["agnostic_mask"]))
        write_video(root / "densepose" / f"{clip}.mp4", last(arrays["pose"]), lossless=True)
        (root / "cloth").mkdir(parents=True, exist_ok=True)
        (root / "cloth_mask").mkdir(parents=True, exist_ok=True)
        Image.fromarray(last(arrays["garment"][:, None])[0]).save(root / "cloth" / f"garment{i}.png")
        Image.fromarray(arrays["garment_mask"][0]).save(root / "cloth_mask" / f"garment{i}.png")
    (root / "pairs.txt").write_text("# clip garment\nclipA.mp4 garment0.png\nclipB garment1\n")
    return root


def test_converted_manifest_reads_back_the_source_files(vivid_root: Path) -> None:
    captions = vivid_root / "captions.jsonl"
    captions.write_text(
        json.dumps({"id": "clipB", "caption": "a person", "actions": [{"start": 2, "end": 6, "text": "lifts the hem"}]})
        + "\n"
    )
    manifest = convert_folders(
        vivid_root, vivid_root / "train.jsonl", pairs=vivid_root / "pairs.txt", captions=captions
    )
    ds = InteractiveManifestDataset(manifest)
    reference = SyntheticTryOnDataset("train", num_clips=2, seed=0)
    assert len(ds) == 2
    for i in range(2):
        got, want = ds[i], reference[i]
        for key in ("video", "agnostic", "agnostic_mask", "pose", "garment", "garment_mask"):
            assert torch.equal(got[key], want[key]), key
        assert "hand_prior" not in got  # no hand-prior folder: an absent key, not zeros
    assert ds[0]["caption"] == "" and ds[0]["actions"] == []  # stage-1 data: no captions
    assert ds[1]["caption"] == "a person"
    assert ds[1]["interaction"].tolist()[:7] == [0, 0, 1, 1, 1, 1, 0]
    record = json.loads(manifest.read_text().splitlines()[1])
    assert record["video"] == "videos/clipB.mp4" and record["garment"] == "cloth/garment1.png"
    assert record["actions"][0]["end_s"] == pytest.approx(6 / record["fps"])


def test_errors_name_the_clip_and_the_field(vivid_root: Path) -> None:
    (vivid_root / "agnostic" / "clipB.mp4").unlink()
    with pytest.raises(ManifestError, match=r"clip 'clipB': field 'agnostic' has no file named 'clipB'"):
        convert_folders(vivid_root, vivid_root / "m.jsonl", pairs=vivid_root / "pairs.txt")
    frames = np.zeros((3, 48, 64, 3), dtype=np.uint8)
    write_video(vivid_root / "agnostic" / "clipB.mp4", frames, lossless=True)
    with pytest.raises(ManifestError, match=r"clip 'clipB': field 'agnostic' has 3 frames, the video has 17"):
        convert_folders(vivid_root, vivid_root / "m.jsonl", pairs=vivid_root / "pairs.txt")
    with pytest.raises(ManifestError, match=r"clip 'clipA': field 'garment' names 'clipA'"):
        convert_folders(vivid_root, vivid_root / "m.jsonl")  # no pairs file: garments must share the clip's name
    (vivid_root / "bad_pairs.txt").write_text("clipA\n")
    with pytest.raises(ManifestError, match=r"bad_pairs.txt:1: expected 'clip garment'"):
        convert_folders(vivid_root, vivid_root / "m.jsonl", pairs=vivid_root / "bad_pairs.txt")
    assert not (vivid_root / "m.jsonl").exists()  # nothing half-written


def test_cli_converts_with_renamed_folders(vivid_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (vivid_root / "densepose").rename(vivid_root / "pose")
    out = vivid_root / "val.jsonl"
    args = [
        "convert",
        "--root",
        str(vivid_root),
        "--out",
        str(out),
        "--pairs",
        str(vivid_root / "pairs.txt"),
        "--no-progress",
    ]
    assert itryon(args) == 2
    assert "densepose: no such folder" in capsys.readouterr().err
    assert itryon([*args, "--pose-dir", "pose", "--garment-mask-dir", ""]) == 0
    record = json.loads(out.read_text().splitlines()[0])
    assert record["pose"] == "pose/clipA.mp4" and "garment_mask" not in record
    assert FolderLayout().pose == "densepose"
