"""The default (MediaPipe) estimators on a real photograph and on synthetic-world videos; skipped without
``pip install -e ".[preprocess]"``."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from preprocess_helpers import (
    ASTRONAUT_BACKGROUND,
    ASTRONAUT_HEAD,
    ASTRONAUT_TORSO,
    astronaut_crops,
    astronaut_video,
    garment_image,
    to_frame,
)

from itryon.data.manifest import InteractiveManifestDataset, read_manifest
from itryon.data.video_io import read_video
from itryon.preprocess.estimators import EstimatorSpec
from itryon.preprocess.pipeline import load_keypoints
from itryon.preprocess.runner import find_jobs, preprocess_split
from itryon.preprocess.types import J


@functools.cache
def mediapipe_problem() -> str | None:
    try:
        spec = EstimatorSpec()
        built = spec.build()
        built["pose"].estimate(np.zeros((1, 32, 32, 3), np.uint8))
    except Exception as exc:  # not installed, or installed beside a protobuf it cannot load with
        return f"{type(exc).__name__}: {exc}"
    return None


pytestmark = pytest.mark.skipif(
    mediapipe_problem() is not None, reason=f"default estimators unavailable ({mediapipe_problem()})"
)


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("astro")
    astronaut_video(root / "in" / "videos")
    garment_image(root / "in" / "garments" / "astronaut.png")
    jobs = find_jobs(root / "in" / "videos", root / "in" / "garments", root / "out", "train")
    result = preprocess_split(jobs, root / "out" / "train.jsonl", EstimatorSpec(), progress=False)
    assert result.processed == ["astronaut"], result.failed
    return root / "out"


def test_the_astronaut_video_gives_a_row_the_dataset_loads(astronaut: Path) -> None:
    sample = InteractiveManifestDataset(astronaut / "train.jsonl")[0]
    assert sample["video"].shape == (3, 17, 160, 128) and sample["pose"].shape == sample["video"].shape
    assert sample["meta"]["estimators"] == {
        "segmenter": "MediaPipeSegmenter",
        "pose": "MediaPipePose",
        "hands": "MediaPipeHands",
    }


def test_pose_landmarks_fall_on_the_person(astronaut: Path) -> None:
    (record,) = read_manifest(astronaut / "train.jsonl")
    pose, _ = load_keypoints(astronaut / record["meta"]["keypoints"])
    for t, crop in enumerate(astronaut_crops()):
        x0, y0, x1, y1 = to_frame(ASTRONAUT_HEAD, crop, 160, 128)
        hx, hy = pose.points[t, J["head"]]
        assert pose.visible[t, J["head"]] and x0 <= hx <= x1 and y0 <= hy <= y1, (t, hx, hy)
        for joint in ("r_shoulder", "l_shoulder"):
            assert pose.visible[t, J[joint]]
        # her shoulders are below her head and on either side of it (her right on the image's left)
        assert pose.points[t, J["r_shoulder"], 0] < hx < pose.points[t, J["l_shoulder"], 0]
        assert pose.points[t, J["r_shoulder"], 1] > hy and pose.points[t, J["l_shoulder"], 1] > hy


def test_the_agnostic_mask_covers_the_torso_and_not_the_background(astronaut: Path) -> None:
    (record,) = read_manifest(astronaut / "train.jsonl")
    mask = read_video(astronaut / record["agnostic_mask"]).numpy()[..., 0] > 127
    for t, crop in enumerate(astronaut_crops()):
        x0, y0, x1, y1 = to_frame(ASTRONAUT_TORSO, crop, 160, 128)
        assert mask[t, y0:y1, x0:x1].mean() > 0.9, t
        bx0, by0, bx1, by1 = to_frame(ASTRONAUT_BACKGROUND, crop, 160, 128)
        if bx1 > bx0 and by1 > by0:  # the flag and wall, while they are in the frame
            assert mask[t, by0:by1, bx0:bx1].mean() < 0.02, t
        hx0, hy0, hx1, hy1 = to_frame((190, 80, 260, 170), crop, 160, 128)  # her face
        assert mask[t, hy0:hy1, hx0:hx1].mean() < 0.02, t


def test_synthetic_world_videos_give_masks_close_to_the_truth(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from preprocess import iou, write_inputs

    truth = write_inputs(tmp_path / "in", 2, 9, 192, 256)
    jobs = find_jobs(tmp_path / "in" / "videos", tmp_path / "in" / "garments", tmp_path / "out", "test")
    result = preprocess_split(jobs, tmp_path / "out" / "test.jsonl", EstimatorSpec(), progress=False)
    assert len(result.processed) == 2
    for record in read_manifest(tmp_path / "out" / "test.jsonl"):
        mask = read_video(tmp_path / "out" / record["agnostic_mask"]).numpy()[..., 0] > 127
        assert iou(mask, truth[record["id"]]["agnostic_mask"]) > 0.5
