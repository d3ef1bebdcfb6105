"""Acceptance: ``itryon preprocess`` on synthetic-world MP4s (train) and the astronaut video (val) writes splits
that ``train.py`` trains on for a few steps."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from preprocess_helpers import FAKES, astronaut_video, garment_image

from itryon.cli.main import main as itryon
from itryon.cli.train import main as train
from itryon.data.synthetic import ClipSpec, generate_clip
from itryon.data.video_io import write_video

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_preprocess_real_photo import mediapipe_problem  # noqa: E402

FAST = [
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "data.batch_size=2",
    "model.sampler.num_steps=2",
    "model.warmup_steps=0",
    "checkpoint.every_n_train_steps=2",
    "callbacks.throughput.window=2",
]


def synthetic_inputs(root: Path, clips: int = 3) -> None:
    for index in range(clips):
        clip = generate_clip("train", index, 0, ClipSpec(num_frames=17, height=48, width=64))
        write_video(root / "videos" / f"world{index}.mp4", clip["video"].transpose(1, 2, 3, 0), fps=8.0, lossless=True)
        (root / "garments").mkdir(parents=True, exist_ok=True)
        Image.fromarray(clip["garment"].transpose(1, 2, 0)).save(root / "garments" / f"world{index}.png")


@pytest.mark.parametrize("estimators", ["stand-ins", "default"])
def test_preprocessed_splits_train(tmp_path: Path, estimators: str) -> None:
    if estimators == "default" and mediapipe_problem():
        pytest.skip(f"default estimators unavailable ({mediapipe_problem()})")
    flags = (
        []
        if estimators == "default"
        else ["--segmenter", FAKES["segmenter"], "--pose", FAKES["pose"], "--hands", FAKES["hands"]]
    )
    synthetic_inputs(tmp_path / "world")
    astronaut_video(tmp_path / "photo" / "videos")
    garment_image(tmp_path / "photo" / "garments" / "astronaut.png")
    data = tmp_path / "data"
    for split, root in (("train", tmp_path / "world"), ("val", tmp_path / "photo")):
        code = itryon(
            [
                "preprocess",
                "--videos",
                str(root / "videos"),
                "--garments",
                str(root / "garments"),
                "--out",
                str(data),
                "--split",
                split,
                "--no-progress",
                *flags,
            ]
        )
        assert code == 0 and (data / f"{split}.jsonl").is_file()
    overrides = [f"data.train.manifest={data / 'train.jsonl'}", f"data.val.manifest={data / 'val.jsonl'}"]
    # the own-videos experiment: clips of both sizes served in shape buckets
    if estimators == "stand-ins":  # and with the latent cache of the training split
        assert (
            itryon(
                [
                    "cache",
                    "--config",
                    "configs/experiment/own_videos.yaml",
                    "--split",
                    "train",
                    "--no-progress",
                    *overrides,
                ]
            )
            == 0
        )
        overrides.append("data.cache=require")
    assert (
        train(
            [
                "--config",
                "configs/experiment/own_videos.yaml",
                *FAST,
                *overrides,
                f"output_dir={tmp_path / 'runs'}",
                "name=own",
            ]
        )
        == 0
    )
    (run,) = (tmp_path / "runs" / "own").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert (
        metrics["global_step"] == 2 and np.isfinite(metrics["metrics"]["val/loss"]) and "val/ssim" in metrics["metrics"]
    )
