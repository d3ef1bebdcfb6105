"""Convert a video try-on dataset laid out as one folder per modality into the interactive manifest.

Standard VVT datasets (ViViD and its relatives) keep, per clip, files with the same stem in sibling folders:
``videos/clip.mp4``, ``agnostic/clip.mp4``, ``agnostic_mask/clip.mp4``, ``densepose/clip.mp4``,
``cloth/garment.jpg`` (+ ``cloth_mask/garment.jpg``). The manifest points at those files in place (nothing
is copied); garments pair with clips by a pairs file (``clip garment`` per line) or by equal stems. Captions,
action captions and hand priors join from an optional JSON-lines file ``{"id", "caption", "actions"}`` and
a hand-prior folder; clips without them get an empty caption and no actions (the paper's stage-1 data).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tqdm import tqdm

from itryon.data.contract import MASK_KEYS, VIDEO_KEYS
from itryon.data.manifest import ManifestError, read_manifest, write_manifest
from itryon.data.video_io import FRAME_SUFFIXES, VIDEO_SUFFIXES, video_info


@dataclass(frozen=True)
class FolderLayout:
    """Folder names, relative to the dataset root; ``None`` leaves an optional modality out."""

    video: str = "videos"
    agnostic: str = "agnostic"
    agnostic_mask: str = "agnostic_mask"
    pose: str = "densepose"
    garment: str = "cloth"
    garment_mask: str | None = "cloth_mask"
    hand_prior: str | None = None


# the contract's videos and masks that a layout holds as folders of per-clip media
VIDEO_FIELDS = tuple(f.name for f in fields(FolderLayout) if f.name in VIDEO_KEYS + MASK_KEYS)


def _index(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Stem -> path of the media in ``folder`` (files with ``suffixes`` or frame folders)."""
    if not folder.is_dir():
        raise ManifestError(f"{folder}: no such folder")
    out = {}
    for p in sorted(folder.iterdir()):
        if p.is_dir() or p.suffix.lower() in suffixes:
            out.setdefault(p.stem if p.is_file() else p.name, p)
    return out


def read_pairs(path: Path) -> dict[str, str]:
    """``clip garment`` per line (file names or stems; blank lines and ``#`` comments skipped)."""
    pairs = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ManifestError(f"{path}:{number}: expected 'clip garment', got {line!r}")
        pairs[Path(parts[0]).stem] = Path(parts[1]).stem
    return pairs


def read_captions(path: Path) -> dict[str, Mapping[str, Any]]:
    """``{"id": clip stem, "caption": str, "actions": [{start, end, text}, ...]}`` per line."""
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if "id" not in record:
            raise ManifestError(f"{path}:{number}: a caption record needs an 'id'")
        out[str(record["id"])] = record
    return out


def convert_folders(
    root: str | Path,
    manifest: str | Path,
    layout: FolderLayout = FolderLayout(),
    pairs: str | Path | None = None,
    captions: str | Path | None = None,
    fps: float | None = None,
    progress: bool = False,
) -> Path:
    """Write ``manifest`` for every clip of ``root``'s video folder and validate it; returns its path.

    Errors name the clip and the field: a modality file that is missing, a frame count that differs from the
    video's, a garment that the pairs file names but the garment folder lacks.
    """
    manifest = Path(manifest)
    write_manifest(manifest, folder_records(root, manifest.parent, layout, pairs, captions, fps, progress))
    read_manifest(manifest)  # the converted manifest must read back (spans, files)
    return manifest


def folder_records(
    root: str | Path,
    base: str | Path,
    layout: FolderLayout = FolderLayout(),
    pairs: str | Path | None = None,
    captions: str | Path | None = None,
    fps: float | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """The records :func:`convert_folders` writes, with paths relative to ``base`` (the manifest's folder)."""
    root, base = Path(root), Path(base)
    media = {
        f: _index(root / getattr(layout, f), VIDEO_SUFFIXES + FRAME_SUFFIXES)
        for f in VIDEO_FIELDS
        if getattr(layout, f)
    }
    garments = _index(root / layout.garment, FRAME_SUFFIXES)
    garment_masks = _index(root / layout.garment_mask, FRAME_SUFFIXES) if layout.garment_mask else {}
    pairing = read_pairs(Path(pairs)) if pairs else None
    texts = read_captions(Path(captions)) if captions else {}
    clips = sorted(pairing) if pairing is not None else sorted(media["video"])
    return [
        _record(clip, root, base, layout, media, garments, garment_masks, pairing, texts, fps)
        for clip in tqdm(clips, desc="convert", unit="clip", disable=not progress)
    ]


def _record(clip, root, base, layout, media, garments, garment_masks, pairing, texts, fps) -> dict[str, Any]:
    where = f"clip {clip!r}"
    rel = lambda p: os.path.relpath(p, base)  # noqa: E731 - paths are stored relative to the manifest
    if clip not in media["video"]:
        raise ManifestError(f"{where}: no video in {root / layout.video}")
    info = video_info(media["video"][clip])
    record: dict[str, Any] = {
        "id": clip,
        "num_frames": info["frames"],
        "height": info["height"],
        "width": info["width"],
    }
    record["fps"] = float(fps or info["fps"] or 0.0)
    if record["fps"] <= 0:
        raise ManifestError(f"{where}: the video has no frame rate; pass --fps")
    for field, index in media.items():
        if clip not in index:
            if field == "hand_prior":
                continue  # optional: clips without hand renders simply lack the key
            raise ManifestError(
                f"{where}: field '{field}' has no file named {clip!r} in {root / getattr(layout, field)}"
            )
        if field != "video":
            frames = video_info(index[clip])["frames"]
            if frames != info["frames"]:
                raise ManifestError(f"{where}: field '{field}' has {frames} frames, the video has {info['frames']}")
        record[field] = rel(index[clip])
    garment = pairing[clip] if pairing is not None else clip
    if garment not in garments:
        raise ManifestError(f"{where}: field 'garment' names {garment!r}, which is not in {root / layout.garment}")
    record["garment"] = rel(garments[garment])
    if garment in garment_masks:
        record["garment_mask"] = rel(garment_masks[garment])
    text = texts.get(clip, {})
    record["caption"] = str(text.get("caption", ""))
    record["actions"] = [dict(a) for a in text.get("actions", [])]
    for action in record["actions"]:
        action.setdefault("start_s", action["start"] / record["fps"])
        action.setdefault("end_s", action["end"] / record["fps"])
    record["meta"] = {"source": str(root), "garment_id": garment}
    return record
