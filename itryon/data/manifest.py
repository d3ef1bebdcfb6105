"""The interactive try-on manifest: one JSON-lines file per split, one clip per line (format: docs/manifest.md).

Paths in a record are relative to the manifest's folder. Videos are MP4 files or folders of PNG frames,
masks are PNG frame folders (lossless), the garment and its mask are PNG images. Real interactive data is
converted to the same format, so :class:`InteractiveManifestDataset` serves synthetic and real clips alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from itryon.io_utils import atomic_open, atomic_path

from .contract import interaction_from_actions, validate_sample
from .video_io import read_video, write_video

VIDEO_FIELDS = ("video", "agnostic", "pose", "hand_prior", "counterfactual")  # RGB videos, [3, T, H, W]
MASK_FIELDS = ("agnostic_mask", "interaction_mask", "counterfactual_mask")  # binary videos, [1, T, H, W]
IMAGE_FIELDS = ("garment", "garment_mask")  # [3, Hg, Wg] and [1, Hg, Wg]
FILE_FIELDS = VIDEO_FIELDS + MASK_FIELDS + IMAGE_FIELDS
REQUIRED_FIELDS = ("id", "fps", "num_frames", "video", "agnostic", "agnostic_mask", "pose", "garment", "caption", "actions")
NO_HAND = 128  # hand prior value that encodes 0 ("no hand") in [-1, 1]
VIDEO_FORMATS = ("mp4", "png")


class ManifestError(ValueError):
    """A manifest line or the files it points to do not follow the format."""


def _to_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    if torch.is_tensor(x):
        return x
    x = np.ascontiguousarray(x)
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def sample_from_arrays(arrays: Mapping[str, Any], caption: str, actions: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> dict[str, Any]:
    """A contract sample from channels-first uint8 arrays (``[C, T, H, W]`` videos, ``[C, Hg, Wg]`` images).

    RGB maps to [-1, 1] (``u / 127.5 - 1``), masks to {0, 1} (``u > 127``); in the hand prior, pixels equal to
    128 in every channel are exactly 0 (no hand). Fields absent from ``arrays`` stay absent.
    """
    num_frames = int(_to_tensor(arrays["video"]).shape[1])
    sample: dict[str, Any] = {}
    for key in VIDEO_FIELDS + ("garment",):
        if key in arrays:
            u = _to_tensor(arrays[key])
            value = u.float().div_(127.5).sub_(1.0)
            if key == "hand_prior":
                value = value.masked_fill_((u == NO_HAND).all(dim=0, keepdim=True), 0.0)
            sample[key] = value
    for key in MASK_FIELDS + ("garment_mask",):
        if key in arrays:
            sample[key] = (_to_tensor(arrays[key]) > 127).float()
    sample["caption"] = str(caption)
    sample["actions"] = [dict(a) for a in actions]
    sample["interaction"] = interaction_from_actions(sample["actions"], num_frames)
    sample["meta"] = dict(meta)
    return sample


def check_span(action: Mapping[str, Any], num_frames: int, fps: float, where: str) -> None:
    """Raise :class:`ManifestError` unless ``0 <= start < end <= num_frames`` and the seconds (if given) match the frames."""
    for key in ("start", "end", "text"):
        if key not in action:
            raise ManifestError(f"{where}: lacks '{key}' (an action needs start, end, text)")
    start, end = action["start"], action["end"]
    if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool) or isinstance(end, bool):
        raise ManifestError(f"{where}: start and end must be integer frame indices, got {start!r} and {end!r}")
    if not 0 <= start < end <= num_frames:
        raise ManifestError(f"{where}: span [{start}, {end}) is not inside the clip's {num_frames} frames (end is exclusive, start < end)")
    for key, frame in (("start_s", start), ("end_s", end)):
        if key in action and abs(float(action[key]) * fps - frame) > 0.5:
            raise ManifestError(f"{where}: {key}={action[key]} s is frame {float(action[key]) * fps:.2f} at {fps} fps, but the span says frame {frame}")


def validate_record(record: Mapping[str, Any], root: Path, where: str, check_files: bool = True) -> None:
    """Check one manifest record: required fields, spans, and (``check_files``) that every referenced file exists."""
    clip = f"{where}: clip {record.get('id', '?')!r}"
    missing = [k for k in REQUIRED_FIELDS if k not in record]
    if missing:
        raise ManifestError(f"{clip}: missing field(s) {missing}; a record needs {list(REQUIRED_FIELDS)}")
    num_frames, fps = record["num_frames"], record["fps"]
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ManifestError(f"{clip}: 'num_frames' must be a positive integer, got {num_frames!r}")
    if not isinstance(fps, (int, float)) or fps <= 0:
        raise ManifestError(f"{clip}: 'fps' must be a positive number, got {fps!r}")
    if not isinstance(record["actions"], list):
        raise ManifestError(f"{clip}: 'actions' must be a list, got {type(record['actions']).__name__}")
    for i, action in enumerate(record["actions"]):
        check_span(action, num_frames, float(fps), f"{clip}: actions[{i}]")
    if check_files:
        for key in FILE_FIELDS:
            if key in record and not (root / record[key]).exists():
                raise ManifestError(f"{clip}: field '{key}' points to {root / record[key]}, which does not exist")


def read_manifest(path: str | Path, check_files: bool = True) -> list[dict[str, Any]]:
    """Parse and validate every line of a JSON-lines manifest (blank lines are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    records = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(record, dict):
                raise ManifestError(f"{where}: a line must hold a JSON object, got {type(record).__name__}")
            validate_record(record, path.parent, where, check_files)
            if record["id"] in seen:
                raise ManifestError(f"{where}: clip id {record['id']!r} repeats line {seen[record['id']]}")
            seen[record["id"]] = number
            records.append(record)
    return records


def write_manifest(path: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write records as JSON lines, atomically (a reader never sees half a manifest)."""
    path = Path(path)
    with atomic_open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    return path


def write_clip_files(root: str | Path, folder: str, arrays: Mapping[str, np.ndarray], fps: float, video_format: str = "mp4") -> dict[str, str]:
    """Write a clip's channels-first uint8 arrays under ``root/folder``; returns ``{field: relative path}``.

    RGB videos become lossless MP4 (``libx264rgb``, qp 0) or PNG frame folders; masks always PNG frame folders.
    """
    if video_format not in VIDEO_FORMATS:
        raise ManifestError(f"unknown video format {video_format!r}; expected one of {list(VIDEO_FORMATS)}")
    root = Path(root)
    paths: dict[str, str] = {}
    for key, value in arrays.items():
        if key in VIDEO_FIELDS:
            rel = f"{folder}/{key}.mp4" if video_format == "mp4" else f"{folder}/{key}"
            write_video(root / rel, np.ascontiguousarray(np.asarray(value).transpose(1, 2, 3, 0)), fps=fps, lossless=True)
        elif key in MASK_FIELDS:
            rel = f"{folder}/{key}"
            write_video(root / rel, np.ascontiguousarray(np.asarray(value).transpose(1, 2, 3, 0)), fps=fps)
        elif key in IMAGE_FIELDS:
            rel = f"{folder}/{key}.png"
            image = np.asarray(value).transpose(1, 2, 0)
            with atomic_path(root / rel) as tmp:
                Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(tmp, format="PNG")
        else:
            raise ManifestError(f"cannot write field {key!r}; known fields: {list(FILE_FIELDS)}")
        paths[key] = rel
    return paths


def _read_image(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        array = np.asarray(im)
    return array[None] if array.ndim == 2 else array[..., :3].transpose(2, 0, 1)


class InteractiveManifestDataset(Dataset):
    """Clips of an interactive manifest (``DIR/<split>.jsonl``) as contract samples.

    ``manifest`` is the ``.jsonl`` file, or a folder together with ``split``. ``num_frames`` keeps the first
    ``num_frames`` frames (actions are cut to them; a shorter clip is an error); None keeps every frame.
    ``transforms`` (e.g. :class:`itryon.data.transforms.Resize`, :class:`~itryon.data.transforms.TemporalCrop`)
    apply in order to each sample, before its contract is checked.
    """

    def __init__(
        self,
        manifest: str | Path,
        num_frames: int | None = None,
        split: str | None = None,
        check_files: bool = True,
        transforms: Sequence[Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
    ):
        path = Path(manifest)
        if path.is_dir():
            if split is None:
                raise ManifestError(f"{path} is a folder: pass split= to read {path}/<split>.jsonl, or pass the .jsonl file")
            path = path / f"{split}.jsonl"
        if num_frames is not None and num_frames < 1:
            raise ManifestError(f"num_frames must be positive or None, got {num_frames}")
        self.path = path
        self.root = path.parent
        self.num_frames = num_frames
        self.transforms = list(transforms or [])
        self.records = read_manifest(path, check_files=check_files)
        if num_frames is not None:
            short = [r["id"] for r in self.records if r["num_frames"] < num_frames]
            if short:
                raise ManifestError(f"{path}: clip(s) {short[:5]} have fewer than num_frames={num_frames} frames")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        clip = f"{self.path}: clip {record['id']!r}"
        length = record["num_frames"]
        keep = self.num_frames or length
        arrays: dict[str, np.ndarray | torch.Tensor] = {}
        for key in VIDEO_FIELDS + MASK_FIELDS:
            if key in record:
                frames = read_video(self.root / record[key])  # (T, H, W, C)
                if frames.shape[0] != length:
                    raise ManifestError(f"{clip}: field '{key}' has {frames.shape[0]} frames, the record says num_frames={length}")
                if key in MASK_FIELDS:
                    frames = frames[..., :1]  # masks stored as RGB video: any channel
                arrays[key] = frames[:keep].permute(3, 0, 1, 2)
        for key in IMAGE_FIELDS:
            if key in record:
                image = _read_image(self.root / record[key])
                arrays[key] = image[:1] if key == "garment_mask" else image
        fps = float(record["fps"])
        actions = []
        for a in record["actions"]:
            if a["start"] < keep:
                end = min(int(a["end"]), keep)
                actions.append({**a, "end": end, "end_s": round(end / fps, 6)} if end != a["end"] else dict(a))
        meta = {"source": "manifest", **record.get("meta", {}), "id": record["id"], "fps": fps, "manifest": str(self.path), "video_path": str(self.root / record["video"])}
        sample = sample_from_arrays(arrays, record["caption"], actions, meta)
        for transform in self.transforms:
            sample = transform(sample)
        validate_sample(sample)
        return sample
