"""``itryon preprocess`` end to end with stand-in estimators: a manifest row the dataset loads, resuming,
failure reports, parallel workers, inputs never written, clear errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from preprocess_helpers import FAKES, astronaut_video, garment_image

from itryon.cli.main import main
from itryon.data.manifest import InteractiveManifestDataset, read_manifest
from itryon.data.video_io import read_video, write_video
from itryon.preprocess.estimators import EstimatorError, EstimatorSpec
from itryon.preprocess.runner import PreprocessError, find_jobs, preprocess_split

SPEC = EstimatorSpec(**FAKES)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    astronaut_video(tmp_path / "in" / "videos")
    garment_image(tmp_path / "in" / "garments" / "astronaut.png")
    return tmp_path / "in"


def run(inputs: Path, out: Path, workers: int = 1, spec: EstimatorSpec = SPEC, **kw):
    jobs = find_jobs(inputs / "videos", inputs / "garments", out, "train", **kw)
    return preprocess_split(jobs, out / "train.jsonl", spec, workers=workers, progress=False)


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_clip_becomes_a_manifest_row_the_dataset_loads(inputs: Path, tmp_path: Path) -> None:
    result = run(inputs, tmp_path / "out")
    assert result.processed == ["astronaut"] and not result.failed
    (record,) = read_manifest(result.manifest)
    assert record["num_frames"] == 17 and (record["height"], record["width"]) == (160, 128)
    assert record["video"] == "../in/videos/astronaut.mp4" and record["meta"]["category"] == "upper"
    sample = InteractiveManifestDataset(result.manifest)[0]
    assert sample["video"].shape == (3, 17, 160, 128) and sample["agnostic_mask"].shape == (1, 17, 160, 128)
    mask = sample["agnostic_mask"][0].bool()
    grey = torch.tensor(128 / 127.5 - 1.0)
    assert torch.allclose(sample["agnostic"][:, mask], grey, atol=1e-6) and 0.1 < mask.float().mean() < 0.7
    assert not torch.allclose(sample["agnostic"][:, ~mask], grey, atol=1e-6)
    # the hand prior: the fake right hand (around x = 0.3 W, y = 0.85 H), exactly 0 elsewhere
    prior = sample["hand_prior"]
    on = (prior != 0).any(0)
    ys, xs = torch.nonzero(on[0], as_tuple=True)
    assert (
        on.float().mean() < 0.1
        and abs(xs.float().mean() / 128 - 0.3) < 0.05
        and abs(ys.float().mean() / 160 - 0.85) < 0.06
    )
    # the pose render: coloured on black, the head joint drawn white near (222/512, 128/512) of the photo
    pose = read_video(tmp_path / "out" / record["pose"]).numpy()
    assert (pose.reshape(-1, 3).max(1) == 0).mean() > 0.8 and (pose == 255).all(-1).any()
    assert sample["garment_mask"].mean() > 0.3 and sample["garment_mask"][0, 0, 0] == 0


def test_finished_clips_are_skipped_and_failures_reported(inputs: Path, tmp_path: Path) -> None:
    astronaut_video(inputs / "videos", name="second")
    garment_image(inputs / "garments" / "second.png")
    out = tmp_path / "out"
    first = run(inputs, out)
    assert sorted(first.processed) == ["astronaut", "second"] and first.skipped == []
    before = digest(out / "train")
    again = run(inputs, out)
    assert (
        again.processed == [] and sorted(again.skipped) == ["astronaut", "second"] and digest(out / "train") == before
    )
    (inputs / "garments" / "second.png").write_bytes(b"not a png")
    broken = preprocess_split(
        find_jobs(inputs / "videos", inputs / "garments", out, "train"),
        out / "train.jsonl",
        SPEC,
        progress=False,
        redo=True,
    )
    assert broken.processed == ["astronaut"]
    (failure,) = [json.loads(line) for line in (out / "train.failures.jsonl").read_text().splitlines()]
    assert failure["clip"] == "second" and "second.png" in failure["error"]
    assert [r["id"] for r in read_manifest(out / "train.jsonl")] == ["astronaut", "second"]  # its earlier result stays


def test_parallel_workers_write_what_one_process_writes(inputs: Path, tmp_path: Path) -> None:
    astronaut_video(inputs / "videos", frames=9, name="short")
    garment_image(inputs / "garments" / "short.png", colour=(20, 90, 200))
    run(inputs, tmp_path / "one")
    result = run(inputs, tmp_path / "two", workers=2)
    assert sorted(result.processed) == ["astronaut", "short"]
    one, two = digest(tmp_path / "one" / "train"), digest(tmp_path / "two" / "train")
    assert {k for k in one if not k.endswith("record.json")} == {k for k in two if not k.endswith("record.json")}
    assert all(one[k] == two[k] for k in one if k.endswith((".png", ".mp4", ".npz")))


def test_inputs_are_never_written(inputs: Path, tmp_path: Path) -> None:
    before = digest(inputs)
    run(inputs, tmp_path / "out")
    assert digest(inputs) == before
    frames = read_video(inputs / "videos" / "astronaut.mp4").numpy()
    (inputs / "videos" / "astronaut.mp4").unlink()
    write_video(inputs / "videos" / "astronaut", frames)  # the clip as a folder of frames
    with pytest.raises(PreprocessError, match="would hold the input"):  # OUT/<split>/<clip> is that folder
        find_jobs(inputs / "videos", inputs / "garments", inputs, "videos", fps=8.0)


def test_missing_pieces_are_clear_errors(inputs: Path, tmp_path: Path, capsys) -> None:
    (inputs / "garments" / "other.png").write_bytes((inputs / "garments" / "astronaut.png").read_bytes())
    (inputs / "garments" / "astronaut.png").rename(inputs / "garments" / "third.png")
    with pytest.raises(PreprocessError, match="clip 'astronaut': no garment image named 'astronaut'"):
        find_jobs(inputs / "videos", inputs / "garments", tmp_path / "out", "train")
    (inputs / "pairs.txt").write_text("astronaut third dress\n")
    (job,) = find_jobs(inputs / "videos", inputs / "garments", tmp_path / "out", "train", pairs=inputs / "pairs.txt")
    assert job.garment.name == "third.png" and job.category == "dress"
    (inputs / "pairs.txt").write_text("astronaut third sock\n")
    with pytest.raises(ValueError, match="unknown garment category 'sock'"):
        find_jobs(inputs / "videos", inputs / "garments", tmp_path / "out", "train", pairs=inputs / "pairs.txt")
    with pytest.raises(EstimatorError, match="unknown pose estimator 'openpose'"):
        EstimatorSpec(segmenter="colour-key", pose="openpose", hands="none").build()
    (inputs / "pairs.txt").write_text("astronaut third\n")
    code = main(
        [
            "preprocess",
            "--videos",
            str(inputs / "videos"),
            "--garments",
            str(inputs / "garments"),
            "--pairs",
            str(inputs / "pairs.txt"),
            "--out",
            str(tmp_path / "o"),
            "--pose-model",
            str(tmp_path / "rtmpose.onnx"),
            "--segmenter",
            "colour-key",
            "--hands",
            "none",
        ]
    )
    assert code == 2 and "rtmpose.onnx does not exist" in capsys.readouterr().err


def test_default_estimators_name_the_install_when_mediapipe_is_missing() -> None:
    try:
        import mediapipe  # noqa: F401
    except Exception:
        with pytest.raises(EstimatorError, match=r'pip install -e "\.\[preprocess\]"'):
            EstimatorSpec().build()
    else:
        pytest.skip("mediapipe is installed: the defaults build")


def test_colour_key_segmenter_and_garment_mask_on_plain_backgrounds() -> None:
    from itryon.preprocess.classical import ColourKeySegmenter, garment_mask

    frames = np.full((2, 40, 30, 3), (40, 200, 90), np.uint8)
    frames[:, 10:35, 8:20] = (200, 30, 30)
    person = ColourKeySegmenter().segment(frames).person
    assert person[:, 10:35, 8:20].all() and person.sum() == 2 * 25 * 12
    image = np.full((30, 30, 3), 255, np.uint8)
    image[5:25, 5:25] = (10, 10, 10)
    image[12:18, 12:18] = (250, 250, 250)  # a white print inside the garment is still garment
    assert garment_mask(image)[5:25, 5:25].all() and garment_mask(image).sum() == 400
