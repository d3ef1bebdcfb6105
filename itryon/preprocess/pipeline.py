"""One clip: a person video and an in-shop garment image -> the interactive manifest's files and record."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from itryon.data.manifest import write_clip_files
from itryon.data.synthetic.skeleton import LEG_COLOURS, LEG_LIMBS, POSE_COLOURS, POSE_LIMBS, draw_pose
from itryon.data.video_io import read_video, video_info
from itryon.io_utils import atomic_open, atomic_path

from .agnostic import agnostic_mask, agnostic_video, check_category
from .captions import ClipCaptions
from .classical import garment_mask
from .hand_prior import render_hand_prior
from .types import BodyPose, HandPose

DONE = "record.json"  # written last in a clip's folder: the clip is finished
KEYPOINTS = "keypoints.npz"  # the estimators' keypoints, kept beside the renders (meta.keypoints)
LIMBS, COLOURS = POSE_LIMBS + LEG_LIMBS, POSE_COLOURS + LEG_COLOURS


@dataclass(frozen=True)
class ClipJob:
    """What one clip reads and where it writes (``folder`` relative to ``out``, the manifest's folder)."""

    clip: str
    video: Path
    garment: Path
    category: str
    out: Path
    folder: str
    fps: float | None = None
    size: tuple[int, int] | None = None  # (H, W) to resize the frames to
    max_frames: int | None = None

    @property
    def done_path(self) -> Path:
        return self.out / self.folder / DONE


def read_frames(job: ClipJob) -> tuple[np.ndarray, float, bool]:
    """``(T, H, W, 3)`` uint8 frames, the frame rate, and whether they differ from the file (resized or cut)."""
    frames = read_video(job.video).numpy()
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    fps = job.fps or video_info(job.video)["fps"]
    if not fps or fps <= 0:
        raise ValueError(f"{job.video}: the video gives no frame rate; pass --fps")
    changed = False
    if job.max_frames is not None and len(frames) > job.max_frames:
        frames, changed = frames[: job.max_frames], True
    if job.size is not None and tuple(frames.shape[1:3]) != tuple(job.size):
        h, w = job.size
        frames = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in frames])
        changed = True
    return frames, float(fps), changed


def read_garment(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The in-shop image ``(H, W, 3)`` uint8 composited on white, and its alpha ``(H, W)`` when it has one."""
    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    array = np.asarray(rgba)
    alpha = array[..., 3]
    rgb = (
        (array[..., :3].astype(np.float32) * (alpha[..., None] / 255.0) + 255.0 * (1 - alpha[..., None] / 255.0))
        .round()
        .astype(np.uint8)
    )
    return rgb, (alpha if (alpha < 255).any() else None)


def save_keypoints(path: Path, pose: BodyPose, hands: HandPose) -> None:
    """The body and hand keypoints of a clip as one ``.npz`` (:func:`load_keypoints` reads them back)."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp,
            body_points=pose.points,
            body_score=pose.score,
            body_depth=pose.depth,
            hand_points=hands.points,
            hand_present=hands.present,
        )


def load_keypoints(path: Path) -> tuple[BodyPose, HandPose]:
    with np.load(path) as z:
        return BodyPose(z["body_points"], z["body_score"], z["body_depth"]), HandPose(
            z["hand_points"], z["hand_present"]
        )


def render_conditions(
    frames: np.ndarray, estimators: dict[str, Any], category: str
) -> tuple[dict[str, np.ndarray], BodyPose, HandPose]:
    """The conditions of person frames ``(T, H, W, 3)`` uint8 as channels-first uint8 arrays (``agnostic``,
    ``agnostic_mask``, ``pose``, ``hand_prior``), with the body and hand keypoints they come from."""
    t, h, w = frames.shape[:3]
    segmentation = estimators["segmenter"].segment(frames).check((t, h, w), "the segmenter")
    pose = estimators["pose"].estimate(frames).check(t, "the pose estimator")
    hands = estimators["hands"].estimate(frames, pose).check(t, "the hand estimator")
    mask = agnostic_mask(pose, segmentation, category, hands)
    arrays = {
        "agnostic": agnostic_video(frames, mask).transpose(3, 0, 1, 2),
        "agnostic_mask": (mask.astype(np.uint8) * 255)[None],
        "pose": draw_pose(pose.points, h, w, LIMBS, COLOURS, visible=pose.visible),
        "hand_prior": render_hand_prior(hands, pose, h, w),
    }
    return arrays, pose, hands


def process_clip(job: ClipJob, estimators: dict[str, Any], captioner: Any | None = None) -> dict[str, Any]:
    """Estimate, render and write one clip; returns its manifest record (also written as ``folder/record.json``)."""
    check_category(job.category)
    frames, fps, changed = read_frames(job)
    for estimator in estimators.values():
        if hasattr(estimator, "for_clip"):  # estimators reading per-clip files
            estimator.for_clip(job.clip)
    arrays, pose, hands = render_conditions(frames, estimators, job.category)
    t, h, w = frames.shape[:3]
    garment, alpha = read_garment(job.garment)
    arrays["garment_mask"] = (garment_mask(garment, alpha).astype(np.uint8) * 255)[None]
    if changed:
        arrays["video"] = frames.transpose(3, 0, 1, 2)
    paths = write_clip_files(job.out, job.folder, arrays, fps)
    save_keypoints(job.out / job.folder / KEYPOINTS, pose, hands)
    text = captioner.captions(job.clip, frames, fps) if captioner is not None else ClipCaptions()

    def rel(p):
        return os.path.relpath(p, job.out)

    record = {
        "id": job.clip,
        "fps": fps,
        "num_frames": int(t),
        "height": int(h),
        "width": int(w),
        "video": paths.pop("video", None) or rel(job.video),
        "garment": rel(job.garment),
        **paths,
        "caption": text.caption,
        "actions": text.actions,
        "meta": {
            "source": "preprocess",
            "video_source": str(job.video),
            "garment_source": str(job.garment),
            "category": job.category,
            "estimators": {k: type(v).__name__ for k, v in estimators.items()},
            "pose_found": round(float(pose.visible[:, :8].all(axis=1).mean()), 4),
            "hands_found": [round(float(x), 4) for x in hands.present.mean(axis=0)],
            "keypoints": f"{job.folder}/{KEYPOINTS}",
        },
    }
    with atomic_open(job.done_path, "w") as f:
        json.dump(record, f, ensure_ascii=False, sort_keys=True)
    return record
