"""The interactive try-on manifest: one JSON-lines file per split, one clip per line (format: docs/manifest.md).

Paths in a record are relative to the manifest's folder. Videos are MP4 files or folders of PNG frames,
masks are PNG frame folders (lossless), the garment and its mask are PNG images. Real interactive data is
converted to the same format, so :class:`InteractiveManifestDataset` serves synthetic and real clips alike.

Conversions on reading (docs/manifest.md): a garment with transparency (RGBA, LA, palette with a transparent
colour) is composited on white, palette and grey garments become RGB; a mask whose largest value is 1 is a
0/1 mask (1 is foreground), otherwise a pixel > 127 is foreground.
"""

from __future__ import annotations

import difflib
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

from .contract import IMAGE_KEYS, MASK_KEYS, VIDEO_KEYS, interaction_from_actions, reference_video, validate_sample
from .contract import REQUIRED_KEYS as CONTRACT_KEYS
from .video_io import read_video, write_video

FILE_FIELDS = VIDEO_KEYS + MASK_KEYS + IMAGE_KEYS  # a record's fields that name files: the contract's tensors
# the contract's required keys, except the two the reader builds (interaction from actions, meta from the record)
REQUIRED_FIELDS = ("id", "fps", "num_frames") + tuple(k for k in CONTRACT_KEYS if k not in ("interaction", "meta"))
OPTIONAL_FIELDS = ("height", "width", "meta") + tuple(f for f in FILE_FIELDS if f not in REQUIRED_FIELDS)
KNOWN_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
NO_HAND = 128  # hand prior value that encodes 0 ("no hand") in [-1, 1]
VIDEO_FORMATS = ("mp4", "png")


class ManifestError(ValueError):
    """A manifest line or the files it points to do not follow the format."""


def _to_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    if torch.is_tensor(x):
        return x
    x = np.ascontiguousarray(x)
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def sample_from_arrays(
    arrays: Mapping[str, Any], caption: str, actions: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """A contract sample from channels-first uint8 arrays (``[C, T, H, W]`` videos, ``[C, Hg, Wg]`` images).

    RGB maps to [-1, 1] (``u / 127.5 - 1``), masks to {0, 1} (``u > 127``); in the hand prior, pixels equal to
    128 in every channel are exactly 0 (no hand). Fields absent from ``arrays`` stay absent.
    """
    num_frames = int(_to_tensor(arrays["video"] if "video" in arrays else arrays["agnostic"]).shape[1])
    sample: dict[str, Any] = {}
    for key in VIDEO_KEYS + ("garment",):
        if key in arrays:
            u = _to_tensor(arrays[key])
            value = u.float().div_(127.5).sub_(1.0)
            if key == "hand_prior":
                value = value.masked_fill_((u == NO_HAND).all(dim=0, keepdim=True), 0.0)
            sample[key] = value
    for key in MASK_KEYS + ("garment_mask",):
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
        raise ManifestError(
            f"{where}: span [{start}, {end}) is not inside the clip's {num_frames} frames (end is exclusive, start < end)"
        )
    if not isinstance(action["text"], str):
        raise ManifestError(f"{where}: 'text' must be a string, got {_shown(action['text'])}")
    for key, frame in (("start_s", start), ("end_s", end)):
        if key in action and not _is_finite_number(action[key]):
            raise ManifestError(f"{where}: {key} must be a finite number of seconds, got {_shown(action[key])}")
        if key in action and abs(float(action[key]) * fps - frame) > 0.5:
            raise ManifestError(
                f"{where}: {key}={action[key]} s is frame {float(action[key]) * fps:.2f} at {fps} fps, but the span says frame {frame}"
            )


def _is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _shown(x: Any) -> str:
    return f"{type(x).__name__} {x!r}" if x is not None else "null"


def validate_record(
    record: Mapping[str, Any], root: Path, where: str, check_files: bool = True, targets: bool = True
) -> None:
    """Check one manifest record: known and required fields, their types, spans, and (``check_files``) that
    every referenced file exists. ``targets=False`` (inference inputs) does not require the ground-truth ``video``."""
    clip = f"{where}: clip {record.get('id', '?')!r}"
    required = REQUIRED_FIELDS if targets else tuple(k for k in REQUIRED_FIELDS if k != "video")
    missing = [k for k in required if k not in record]
    if missing:
        raise ManifestError(f"{clip}: missing field(s) {missing}; a record needs {list(required)}")
    for key in record:
        if key not in KNOWN_FIELDS:
            close = difflib.get_close_matches(str(key), KNOWN_FIELDS, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ManifestError(
                f"{clip}: unknown field {key!r}; {hint}known fields: {', '.join(KNOWN_FIELDS)} (free-form data belongs in 'meta')"
            )
    if not isinstance(record["id"], str) or not record["id"]:
        raise ManifestError(f"{clip}: 'id' must be a non-empty string, got {_shown(record['id'])}")
    num_frames, fps = record["num_frames"], record["fps"]
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
        raise ManifestError(f"{clip}: 'num_frames' must be a positive integer, got {_shown(num_frames)}")
    if not _is_finite_number(fps) or fps <= 0:
        raise ManifestError(f"{clip}: 'fps' must be a positive finite number, got {_shown(fps)}")
    if not isinstance(record["caption"], str):
        raise ManifestError(f"{clip}: 'caption' must be a string (\"\" for none), got {_shown(record['caption'])}")
    for key in ("height", "width"):
        if key in record and (not isinstance(record[key], int) or isinstance(record[key], bool) or record[key] < 1):
            raise ManifestError(f"{clip}: '{key}' must be a positive integer, got {_shown(record[key])}")
    if "meta" in record and not isinstance(record["meta"], dict):
        raise ManifestError(f"{clip}: 'meta' must be an object, got {_shown(record['meta'])}")
    for key in FILE_FIELDS:
        if key in record and (not isinstance(record[key], str) or not record[key]):
            raise ManifestError(f"{clip}: field '{key}' must be a path (a string), got {_shown(record[key])}")
    if not isinstance(record["actions"], list):
        raise ManifestError(f"{clip}: 'actions' must be a list, got {type(record['actions']).__name__}")
    for i, action in enumerate(record["actions"]):
        if not isinstance(action, dict):
            raise ManifestError(f"{clip}: actions[{i}] must be an object {{start, end, text}}, got {_shown(action)}")
        check_span(action, num_frames, float(fps), f"{clip}: actions[{i}]")
    if check_files:
        for key in FILE_FIELDS:
            if key in record and not (root / record[key]).exists():
                raise ManifestError(f"{clip}: field '{key}' points to {root / record[key]}, which does not exist")


def read_manifest(
    path: str | Path, check_files: bool = True, rejected: list[dict[str, Any]] | None = None, targets: bool = True
) -> list[dict[str, Any]]:
    """Parse and validate every line of a JSON-lines manifest (blank lines are skipped).

    The first bad line raises :class:`ManifestError`; with a ``rejected`` list, bad lines are appended to it
    instead (``{"line", "clip", "error"}``) and the others are returned (``itryon infer`` goes on so).
    """
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
            record: Any = None
            try:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ManifestError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
                if not isinstance(record, dict):
                    raise ManifestError(f"{where}: a line must hold a JSON object, got {type(record).__name__}")
                validate_record(record, path.parent, where, check_files, targets)
                if record["id"] in seen:
                    raise ManifestError(f"{where}: clip id {record['id']!r} repeats line {seen[record['id']]}")
            except ManifestError as exc:
                if rejected is None:
                    raise
                clip = record.get("id") if isinstance(record, dict) else None
                rejected.append(
                    {"line": number, "clip": str(clip) if clip is not None else f"line {number}", "error": str(exc)}
                )
                continue
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


def write_clip_files(
    root: str | Path, folder: str, arrays: Mapping[str, np.ndarray], fps: float, video_format: str = "mp4"
) -> dict[str, str]:
    """Write a clip's channels-first uint8 arrays under ``root/folder``; returns ``{field: relative path}``.

    RGB videos become lossless MP4 (``libx264rgb``, qp 0) or PNG frame folders; masks always PNG frame folders.
    """
    if video_format not in VIDEO_FORMATS:
        raise ManifestError(f"unknown video format {video_format!r}; expected one of {list(VIDEO_FORMATS)}")
    root = Path(root)
    paths: dict[str, str] = {}
    for key, value in arrays.items():
        if key in VIDEO_KEYS:
            rel = f"{folder}/{key}.mp4" if video_format == "mp4" else f"{folder}/{key}"
            write_video(
                root / rel, np.ascontiguousarray(np.asarray(value).transpose(1, 2, 3, 0)), fps=fps, lossless=True
            )
        elif key in MASK_KEYS:
            rel = f"{folder}/{key}"
            write_video(root / rel, np.ascontiguousarray(np.asarray(value).transpose(1, 2, 3, 0)), fps=fps)
        elif key in IMAGE_KEYS:
            rel = f"{folder}/{key}.png"
            image = np.asarray(value).transpose(1, 2, 0)
            with atomic_path(root / rel) as tmp:
                Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(tmp, format="PNG")
        else:
            raise ManifestError(f"cannot write field {key!r}; known fields: {list(FILE_FIELDS)}")
        paths[key] = rel
    return paths


def _read_image(path: Path, mask: bool = False) -> np.ndarray:
    """A garment image as RGB ``[3, H, W]`` (transparency composited on white) or a mask as ``[1, H, W]``."""
    with Image.open(path) as im:
        if mask:
            if im.mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
                array = np.asarray(im.convert("RGB"))[..., 0]  # a mask saved as colour: any channel
            else:
                array = np.asarray(im.convert("L"))
            return mask_levels(array[None])
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            array = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
        else:
            array = np.asarray(im.convert("RGB"))
    return array.transpose(2, 0, 1)


def mask_levels(u: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """A 0/1 mask (largest value 1) scaled to 0/255, so that ``> 127`` reads it; other masks as they are."""
    return u * 255 if int(u.max()) == 1 else u


class InteractiveManifestDataset(Dataset):
    """Clips of an interactive manifest (``DIR/<split>.jsonl``) as contract samples.

    ``manifest`` is the ``.jsonl`` file, or a folder together with ``split``. ``num_frames`` keeps the first
    ``num_frames`` frames (actions are cut to them; a shorter clip is an error); None keeps every frame.
    ``transforms`` (e.g. :class:`itryon.data.transforms.Resize`, :class:`~itryon.data.transforms.TemporalCrop`)
    apply in order to each sample, before its contract is checked.

    Clips are served at one size (``one_size``, so that they batch): the ``Resize`` in ``transforms`` sets it;
    without one, the video size most records declare (``height``, ``width``), or else the first readable clip's,
    and the first readable clip's garment size. A clip of another size raises :class:`ManifestError` naming it
    and both sizes (the data module skips and reports it) instead of failing the batch's collate.
    ``bad_records="skip"`` leaves out lines that do not validate, listed in ``rejected``, instead of raising.
    ``targets=False`` serves inference inputs: a record needs no ground-truth ``video`` (sizes and lengths then come
    from its ``agnostic`` video).
    An empty manifest is an error.
    """

    def __init__(
        self,
        manifest: str | Path,
        num_frames: int | None = None,
        split: str | None = None,
        check_files: bool = True,
        transforms: Sequence[Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
        bad_records: str = "error",
        one_size: bool = True,
        targets: bool = True,
    ):
        path = Path(manifest)
        if path.is_dir():
            if split is None:
                raise ManifestError(
                    f"{path} is a folder: pass split= to read {path}/<split>.jsonl, or pass the .jsonl file"
                )
            path = path / f"{split}.jsonl"
        if num_frames is not None and num_frames < 1:
            raise ManifestError(f"num_frames must be positive or None, got {num_frames}")
        self.path = path
        self.root = path.parent
        self.num_frames = num_frames
        self.transforms = list(transforms or [])
        if bad_records not in ("error", "skip"):
            raise ManifestError(f"bad_records must be 'error' or 'skip', got {bad_records!r}")
        self.rejected: list[dict[str, Any]] = []
        self.targets = targets
        self.records = read_manifest(
            path, check_files=check_files, rejected=self.rejected if bad_records == "skip" else None, targets=targets
        )
        if not self.records:
            found = (
                f" ({len(self.rejected)} line(s) rejected, the first: {self.rejected[0]['error']})"
                if self.rejected
                else ""
            )
            raise ManifestError(f"{path}: the manifest holds no clips{found}")
        self._sizes: tuple[tuple[int, int], tuple[int, int]] | None = None
        self._size_clip = ""
        self.one_size = one_size
        if num_frames is not None:
            short = [r["id"] for r in self.records if r["num_frames"] < num_frames]
            if short:
                raise ManifestError(f"{path}: clip(s) {short[:5]} have fewer than num_frames={num_frames} frames")

    def __len__(self) -> int:
        return len(self.records)

    def clip_id(self, index: int) -> str:
        return str(self.records[index]["id"])

    def provided_keys(self, record: Mapping[str, Any]) -> set[str]:
        """The sample keys a record yields: the contract's required keys and its optional files."""
        return (set(CONTRACT_KEYS) - ({"video"} if "video" not in record else set())) | {
            k for k in FILE_FIELDS if k in record
        }

    def require_keys(self, needed: Mapping[str, Sequence[str]], skip: bool = False) -> list[dict[str, Any]]:
        """Check that every clip yields the keys each consumer needs (``{"adapter 'hands' (HandPriorAdapter)":
        ["hand_prior"]}``): raise :class:`ManifestError` naming the first clip and consumer that miss one, or with
        ``skip`` leave those clips out and return them as rejected records."""
        keep, dropped = [], []
        for record in self.records:
            problem = None
            for who, keys in needed.items():
                lacking = [k for k in keys if k not in self.provided_keys(record)]
                if lacking and lacking[0] in FILE_FIELDS:
                    problem = f"{self.path}: clip {record['id']!r} lacks field {lacking[0]!r}, which {who} needs"
                    break
                if lacking:
                    problem = f"{self.path}: clip {record['id']!r} yields no key {lacking[0]!r} (the manifest format has no such field), which {who} needs"
                    break
            if problem is None:
                keep.append(record)
            elif skip:
                dropped.append({"clip": str(record["id"]), "error": problem})
            else:
                raise ManifestError(problem + "; add it to every clip or switch that consumer off")
        if dropped:
            self.records = keep
            self.rejected += dropped
            if not keep:
                raise ManifestError(
                    f"{self.path}: no clip has every key the model needs (the first: {dropped[0]['error']})"
                )
        return dropped

    def expected_sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((H, W), (Hg, Wg))`` every served clip and garment must have (see the class docstring)."""
        if self._sizes is None:
            from .transforms import Resize
            from .video_io import video_info

            errors = []
            for record in self.records:  # the first clip whose headers read (a broken one is skipped on its own)
                try:
                    info = video_info(self.root / record["video" if "video" in record else "agnostic"])
                    with Image.open(self.root / record["garment"]) as im:
                        garment = (im.height, im.width)
                except Exception as exc:  # undecodable headers: PyAV, PIL and OS errors
                    errors.append(f"{record['id']}: {type(exc).__name__}: {exc}")
                    continue
                video = self._declared_size() or (int(info["height"]), int(info["width"]))
                for t in self.transforms:
                    if isinstance(t, Resize):
                        video = tuple(t.size)
                        garment = tuple(t.garment_size) if t.garment_size is not None else garment
                self._sizes = (video, garment)  # type: ignore[assignment]
                self._size_clip = str(record["id"])
                break
            else:
                raise ManifestError(f"{self.path}: no clip's video and garment can be read (the first: {errors[0]})")
        return self._sizes  # type: ignore[return-value]

    def _declared_size(self) -> tuple[int, int] | None:
        sizes: dict[tuple[int, int], int] = {}
        for record in self.records:
            if "height" in record and "width" in record:
                key = (int(record["height"]), int(record["width"]))
                sizes[key] = sizes.get(key, 0) + 1
        return max(sizes, key=lambda k: sizes[k]) if sizes else None

    def _check_size(self, sample: Mapping[str, Any], record: Mapping[str, Any], clip: str) -> None:
        if not self.one_size:
            return
        video, garment = self.expected_sizes()
        first = self._size_clip
        got = tuple(reference_video(sample).shape[-2:])
        if got != video:
            raise ManifestError(
                f"{clip}: frames are {got[0]}x{got[1]} (HxW), the dataset serves {video[0]}x{video[1]} (its Resize's, the "
                f"size most clips declare, or clip {first!r}'s); add itryon.data.transforms.Resize to the dataset's transforms to bring every clip to one size"
            )
        got = tuple(sample["garment"].shape[-2:])
        if got != garment:
            raise ManifestError(
                f"{clip}: garment {record['garment']} is {got[0]}x{got[1]} (HxW), the dataset serves garments of {garment[0]}x{garment[1]} "
                f"(clip {first!r}'s or its Resize's); give Resize garment_height and garment_width to bring every garment to one size"
            )

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        clip = f"{self.path}: clip {record['id']!r}"
        length = record["num_frames"]
        keep = self.num_frames or length
        arrays: dict[str, np.ndarray | torch.Tensor] = {}
        for key in VIDEO_KEYS + MASK_KEYS:
            if key in record:
                frames = read_video(self.root / record[key])  # (T, H, W, C)
                if frames.shape[0] != length:
                    raise ManifestError(
                        f"{clip}: field '{key}' has {frames.shape[0]} frames, the record says num_frames={length}"
                    )
                if key in MASK_KEYS:
                    frames = mask_levels(frames[..., :1])  # masks stored as RGB video: any channel
                arrays[key] = frames[:keep].permute(3, 0, 1, 2)
        for key in IMAGE_KEYS:
            if key in record:
                arrays[key] = _read_image(self.root / record[key], mask=key == "garment_mask")
        fps = float(record["fps"])
        actions = []
        for a in record["actions"]:
            if a["start"] < keep:
                end = min(int(a["end"]), keep)
                actions.append({**a, "end": end, "end_s": round(end / fps, 6)} if end != a["end"] else dict(a))
        meta = {
            "source": "manifest",
            **record.get("meta", {}),
            "id": record["id"],
            "fps": fps,
            "manifest": str(self.path),
            "video_path": str(self.root / record["video" if "video" in record else "agnostic"]),
        }
        sample = sample_from_arrays(arrays, record["caption"], actions, meta)
        for transform in self.transforms:
            sample = transform(sample)
        validate_sample(sample, targets=self.targets)
        self._check_size(sample, record, clip)
        return sample
