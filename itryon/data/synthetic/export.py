"""Writing a split of the world to disk in the interactive manifest format (``DIR/<split>.jsonl`` + files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from ..manifest import write_clip_files, write_manifest
from .families import family_mix, mixed_clip
from .spec import ClipSpec
from .world import generate_clip


def write_split(
    out_dir: str | Path,
    split: str,
    num: int,
    seed: int = 0,
    spec: ClipSpec = ClipSpec(),
    video_format: str = "mp4",
    start_index: int = 0,
    progress: bool = False,
    families: str | Sequence[str] | None = None,
) -> Path:
    """Generate clips ``start_index .. start_index + num - 1`` of ``split`` (each of size and timing ``spec``) and
    write them; returns the manifest path.

    ``families`` mixes benchmark families as :class:`.SyntheticTryOnDataset` does (item ``i`` of the mix);
    their ``meta`` records ``family``. Files go to ``out_dir/<split>/<clip id>/``; the manifest is written
    last and atomically.
    """
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    out = Path(out_dir)
    mix = family_mix(families)
    records = []
    for index in tqdm(range(start_index, start_index + num), desc=f"synth {split}", unit="clip", disable=not progress):
        family, local = (None, index) if mix is None else mixed_clip(index, mix)
        clip = generate_clip(split, local, seed, spec, family=family)
        meta = clip["meta"]
        arrays = {k: v for k, v in clip.items() if k not in ("caption", "actions", "meta")}
        paths = write_clip_files(out, f"{split}/{meta['id']}", arrays, spec.fps, video_format)
        records.append(
            {
                "id": meta["id"],
                "fps": float(spec.fps),
                "num_frames": spec.num_frames,
                "height": spec.height,
                "width": spec.width,
                **paths,
                "caption": clip["caption"],
                "actions": clip["actions"],
                "meta": meta,
            }
        )
    return write_manifest(out / f"{split}.jsonl", records)
