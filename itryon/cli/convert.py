"""Convert a video try-on dataset with one folder per modality (ViViD-style) into an interactive manifest."""

from __future__ import annotations

import argparse
import sys

from itryon.data.convert import FolderLayout, convert_folders
from itryon.data.manifest import ManifestError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = FolderLayout()
    parser.add_argument("--root", required=True, help="dataset root holding one folder per modality")
    parser.add_argument("--out", required=True, help="manifest to write (JSON lines), e.g. DATA/train.jsonl")
    parser.add_argument("--pairs", help="file of 'clip garment' lines (default: garments named like the clips)")
    parser.add_argument(
        "--captions", help="JSON lines {id, caption, actions} joined by clip id (default: empty caption, no actions)"
    )
    parser.add_argument("--fps", type=float, help="frame rate when the videos do not carry one (frame folders)")
    for field in ("video", "agnostic", "agnostic_mask", "pose", "garment", "garment_mask", "hand_prior"):
        default = getattr(d, field)
        parser.add_argument(
            f"--{field.replace('_', '-')}-dir",
            dest=field,
            default=default,
            help=f"folder of '{field}' (default: {default})",
        )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    layout = FolderLayout(**{f: getattr(args, f) or None for f in FolderLayout.__dataclass_fields__})
    try:
        path = convert_folders(
            args.root, args.out, layout, args.pairs, args.captions, args.fps, progress=not args.no_progress
        )
    except (ManifestError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="itryon convert", description=__doc__)
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
