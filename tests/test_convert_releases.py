"""Converters of the public releases' layouts (ViViD, VVT/FW-GAN) on tiny trees built in those layouts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from itryon.cli.main import main as itryon
from itryon.data.manifest import InteractiveManifestDataset, ManifestError, read_manifest
from itryon.data.synthetic import ClipSpec, generate_clip
from itryon.data.synthetic.plan import plan_clip
from itryon.data.synthetic.render import _joints
from itryon.data.video_io import read_video, write_video

T, H, W = 9, 48, 64


def last(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, 0, -1))


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def vivid(tmp_path: Path) -> Path:
    """ViViD's release: category folders, one folder per modality, '<clip>.mp4 <garment>.jpg' pairs."""
    root = tmp_path / "ViViD"
    for c, (category, agnostic) in enumerate((("upper_body", True), ("dresses", False))):
        folder = root / category
        lines = []
        for i in range(2):
            clip = generate_clip("train", 2 * c + i, 0, ClipSpec(num_frames=T, height=H, width=W))
            name = f"{1000 + i}_detail"
            write_video(folder / "videos" / f"{name}.mp4", last(clip["video"]), lossless=True)
            write_video(
                folder / "agnostic_mask" / f"{name}.mp4",
                last(np.repeat(clip["agnostic_mask"], 3, axis=0)),
                lossless=True,
            )
            write_video(folder / "densepose" / f"{name}.mp4", last(clip["pose"]), lossless=True)
            if agnostic:
                write_video(folder / "agnostic" / f"{name}.mp4", last(clip["agnostic"]), lossless=True)
            (folder / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(last(clip["garment"][:, None])[0]).save(
                folder / "images" / f"{1000 + i}_in_xl.jpg", quality=95
            )
            lines.append(f"{name}.mp4 {1000 + i}_in_xl.jpg")
        (folder / "train_pairs.txt").write_text("\n".join(lines) + "\n")
    return root


def test_vivid_release_converts_in_place_with_categories(vivid: Path, tmp_path: Path) -> None:
    before = digest(vivid)
    out = tmp_path / "data" / "train.jsonl"
    assert itryon(["convert", "--layout", "vivid", "--root", str(vivid), "--out", str(out), "--no-progress"]) == 0
    assert digest(vivid) == before  # nothing written into the release
    records = read_manifest(out)
    assert [r["id"] for r in records] == [
        "upper_body/1000_detail",
        "upper_body/1001_detail",
        "dresses/1000_detail",
        "dresses/1001_detail",
    ]
    assert [r["meta"]["category"] for r in records] == ["upper", "upper", "dress", "dress"]
    assert records[0]["agnostic"].endswith("upper_body/agnostic/1000_detail.mp4")  # in place
    assert records[2]["agnostic"] == "train/dresses/1000_detail/agnostic.mp4"  # made from video and mask
    ds = InteractiveManifestDataset(out)
    sample = ds[2]
    mask = sample["agnostic_mask"][0].bool()
    assert torch.allclose(sample["agnostic"][:, mask], torch.tensor(128 / 127.5 - 1), atol=1e-6)
    assert torch.equal(sample["agnostic"][:, ~mask], sample["video"][:, ~mask])
    assert sample["garment_mask"].mean() > 0.1 and sample["caption"] == "" and sample["actions"] == []
    (vivid / "dresses" / "train_pairs.txt").unlink()
    with pytest.raises(ManifestError, match=r"dresses: no train_pairs.txt"):
        from itryon.data.convert_vivid import convert_vivid

        convert_vivid(vivid, tmp_path / "again", "train")


def openpose(points: np.ndarray, hands: np.ndarray | None = None) -> dict:
    """An OpenPose JSON frame: COCO-18 body from world joints (12, 2) pixels (eyes and ears not found)."""
    body = np.zeros((18, 3))
    for k, j in ((0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8), (11, 9)):
        body[k] = (*points[j], 0.9)
    person = {"pose_keypoints_2d": body.ravel().tolist()}
    if hands is not None:
        person["hand_right_keypoints_2d"] = np.concatenate([hands, np.full((21, 1), 0.8)], axis=1).ravel().tolist()
    return {"version": 1.2, "people": [person]}


@pytest.fixture
def vvt(tmp_path: Path) -> tuple[Path, dict]:
    """FW-GAN's VVT: split/split_frames, _frames_keypoint, _frames_parsing and clothes_person/img."""
    root = tmp_path / "VVT"
    truth = {}
    for i, clip_id in enumerate(("4he21d00f-g11", "am221d05x-c11")):
        clip = generate_clip("train", i, 0, ClipSpec(num_frames=T, height=H, width=W))
        plan = plan_clip("train", i, 0, ClipSpec(num_frames=T, height=H, width=W, fps=8.0))
        joints = plan.motion.to_pixels(_joints(plan)[0], H, W)  # (T, 12, 2)
        truth[clip_id] = clip
        for t in range(T):
            name = (
                f"{clip_id}_{t:05d}" if i == 0 else f"{clip_id}@{t}=person_front"
            )  # the second clip's names do not number simply
            frames = root / "train" / "train_frames" / clip_id
            frames.mkdir(parents=True, exist_ok=True)
            Image.fromarray(last(clip["video"][:, t : t + 1])[0]).save(frames / f"{name}.png")
            parsing = np.where(clip["agnostic_mask"][0, t] > 127, 5, 0).astype(np.uint8)  # upper clothes
            (root / "train" / "train_frames_parsing" / clip_id).mkdir(parents=True, exist_ok=True)
            Image.fromarray(parsing).save(root / "train" / "train_frames_parsing" / clip_id / f"{name}_label.png")
            hand = None
            if i == 0:
                centre = plan.motion.to_pixels(plan.tracks.center[0][t][None, None], H, W)[0, 0]
                hand = centre + np.stack([np.linspace(-2, 2, 21), np.linspace(-3, 3, 21)], axis=1)
            (root / "train" / "train_frames_keypoint" / clip_id).mkdir(parents=True, exist_ok=True)
            (root / "train" / "train_frames_keypoint" / clip_id / f"{name}_keypoints.json").write_text(
                json.dumps(openpose(joints[t], hand))
            )
        person, cloth = clip_id.upper().split("-")
        (root / "clothes_person" / "img" / person).mkdir(parents=True, exist_ok=True)
        Image.fromarray(last(clip["garment"][:, None])[0]).save(
            root / "clothes_person" / "img" / person / f"{person}-{cloth}@10=cloth_front.jpg", quality=95
        )
    return root, truth


def test_vvt_converts_with_the_world_renderers_from_its_annotations(vvt, tmp_path: Path) -> None:
    root, truth = vvt
    before = digest(root)
    out = tmp_path / "data" / "train.jsonl"
    assert (
        itryon(["convert", "--layout", "vvt", "--root", str(root), "--out", str(out), "--fps", "8", "--no-progress"])
        == 0
    )
    assert digest(root) == before
    records = {r["id"]: r for r in read_manifest(out)}
    assert sorted(records) == ["4he21d00f-g11", "am221d05x-c11"]
    assert records["4he21d00f-g11"]["video"].endswith("train_frames/4he21d00f-g11")  # frames used in place
    assert (
        records["am221d05x-c11"]["video"] == "train/.frames/am221d05x-c11.mp4"
    )  # names that do not number: copied once
    ds = InteractiveManifestDataset(out)
    for i, clip_id in enumerate(ds.records and [r["id"] for r in ds.records]):
        sample = ds[i]
        assert torch.equal(
            ((sample["video"] + 1) * 127.5).round().to(torch.uint8), torch.from_numpy(truth[clip_id]["video"])
        )
        mask = sample["agnostic_mask"][0].numpy() > 0.5
        true = truth[clip_id]["agnostic_mask"][0] > 127
        assert (mask & true).sum() / (mask | true).sum() > 0.5
        pose = read_video(out.parent / records[clip_id]["pose"]).numpy()
        assert (pose == 255).all(-1).sum() > 0  # joints drawn white by the world's renderer
        has_hand = bool((sample["hand_prior"] != 0).any())
        assert has_hand == (clip_id == "4he21d00f-g11")  # only its files hold hand keypoints
    assert (
        itryon(["convert", "--layout", "vvt", "--root", str(root), "--out", str(tmp_path / "x" / "train.jsonl")]) == 2
    )
