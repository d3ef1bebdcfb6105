"""Convert the ViViD release to the interactive manifest.

The release keeps one folder per garment category (``upper_body``, ``lower_body``, ``dresses``), each with one
folder per modality and the pairs of its splits::

    ViViD/upper_body/videos/<clip>.mp4          person videos
                    /images/<garment>.jpg       in-shop garments (``cloth/`` in the code repository's demo data)
                    /agnostic_mask/<clip>.mp4   agnostic masks (videos)
                    /agnostic/<clip>.mp4        agnostic videos (when given; else made here from the video and mask)
                    /densepose/<clip>.mp4       DensePose renders (the pose condition; ``--pose-dir dwpose`` for DWPose)
                    /cloth_mask/<garment>.jpg   garment masks (when given; else made here from the in-shop image)
                    /train_pairs.txt, /test_pairs.txt   '<clip>.mp4 <garment>.jpg' per line

Files of the release are used in place; what is made (agnostic videos, garment masks) goes to the output folder.
Clip ids are ``<category>/<clip>``; ``meta.category`` holds ``upper``, ``lower`` or ``dress``. There are no
captions, action captions or hand priors: the paper's stage-1 data (``--captions`` joins captions by clip id).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from itryon.data.convert import FolderLayout, folder_records
from itryon.data.manifest import ManifestError, read_manifest, write_clip_files, write_manifest
from itryon.data.video_io import read_video

CATEGORIES = {"upper_body": "upper", "lower_body": "lower", "dresses": "dress"}
GREY = 128  # the agnostic fill (the synthetic world's)


def _pick(folder: Path, *names: str) -> str | None:
    return next((n for n in names if (folder / n).is_dir()), None)


def convert_vivid(
    root: str | Path,
    out: str | Path,
    split: str = "train",
    pose_dir: str = "densepose",
    captions: str | Path | None = None,
    fps: float | None = None,
    progress: bool = False,
) -> Path:
    """Write ``out/<split>.jsonl`` for the clips of every category's ``<split>_pairs.txt``; returns its path."""
    root, out = Path(root), Path(out)
    out.mkdir(parents=True, exist_ok=True)  # paths relative to it pass through it ('out/../release/...')
    found = [c for c in CATEGORIES if (root / c).is_dir()]
    if not found:
        raise ManifestError(f"{root}: no ViViD category folder ({', '.join(CATEGORIES)})")
    records: list[dict[str, Any]] = []
    for category in found:
        folder = root / category
        pairs = folder / f"{split}_pairs.txt"
        if not pairs.is_file():
            raise ManifestError(f"{folder}: no {pairs.name} (the release lists each split's clips and garments there)")
        garment = _pick(folder, "images", "cloth")
        if garment is None:
            raise ManifestError(f"{folder}: no garment folder ('images' or 'cloth')")
        layout = FolderLayout(  # without agnostic videos the record first points at the video, replaced below
            video="videos",
            agnostic=_pick(folder, "agnostic") or "videos",
            agnostic_mask="agnostic_mask",
            pose=pose_dir,
            garment=garment,
            garment_mask=_pick(folder, "cloth_mask"),
        )
        for record in folder_records(folder, out, layout, pairs, captions, fps, progress):
            stem = record["id"]
            record["id"] = f"{category}/{stem}"
            record["meta"].update(category=CATEGORIES[category], source="vivid")
            made = {}
            if layout.agnostic == "videos":  # no agnostic videos in this copy: grey the mask's region
                frames = read_video(out / record["video"]).numpy()
                mask = read_video(out / record["agnostic_mask"]).numpy()[..., :1] > 127
                made["agnostic"] = np.where(mask, np.uint8(GREY), frames).transpose(3, 0, 1, 2)
            if "garment_mask" not in record:
                from itryon.preprocess.classical import garment_mask

                with Image.open(out / record["garment"]) as im:
                    image = np.asarray(im.convert("RGB"))
                made["garment_mask"] = (garment_mask(image).astype(np.uint8) * 255)[None]
            if made:
                record.update(write_clip_files(out, f"{split}/{category}/{stem}", made, record["fps"]))
            records.append(record)
    manifest = write_manifest(out / f"{split}.jsonl", records)
    read_manifest(manifest)
    return manifest
