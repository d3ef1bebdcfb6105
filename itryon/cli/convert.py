"""Convert a video try-on dataset into an interactive manifest: a folder-per-modality layout, the ViViD release or VVT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from itryon.data.convert import FolderLayout, convert_folders
from itryon.data.manifest import ManifestError
from itryon.data.video_io import VideoIOError

LAYOUTS = ("folders", "vivid", "vvt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = FolderLayout()
    parser.add_argument(
        "--layout",
        default="folders",
        choices=LAYOUTS,
        help="folders: one folder per modality (default); vivid: the ViViD release; vvt: FW-GAN's VVT",
    )
    parser.add_argument("--root", required=True, help="dataset root")
    parser.add_argument(
        "--out",
        required=True,
        help="manifest to write (JSON lines), e.g. DATA/train.jsonl; for vivid and vvt its name is the split",
    )
    parser.add_argument(
        "--pairs",
        help="folders: 'clip garment' lines (default: garments named like the clips); vvt: '<clip> <garment clip> ...' lines",
    )
    parser.add_argument(
        "--captions", help="JSON lines {id, caption, actions} joined by clip id (default: empty caption, no actions)"
    )
    parser.add_argument(
        "--fps", type=float, help="frame rate when the videos do not carry one (frame folders; required for vvt)"
    )
    parser.add_argument("--workers", type=int, default=1, help="vvt: processes working on clips in parallel")
    for field in ("video", "agnostic", "agnostic_mask", "pose", "garment", "garment_mask", "hand_prior"):
        default = getattr(d, field)
        parser.add_argument(
            f"--{field.replace('_', '-')}-dir",
            dest=field,
            default=default,
            help=f"folders: folder of '{field}' (default: {default}); vivid: --pose-dir dwpose for DWPose renders",
        )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        if args.layout == "vivid":
            from itryon.data.convert_vivid import convert_vivid

            path = convert_vivid(
                args.root,
                out.parent,
                out.stem,
                pose_dir=args.pose,
                captions=args.captions,
                fps=args.fps,
                progress=not args.no_progress,
            )
        elif args.layout == "vvt":
            from itryon.data.convert_vvt import convert_vvt

            if not args.fps:
                raise ManifestError("VVT's frames carry no frame rate: pass --fps")
            result = convert_vvt(
                args.root, out.parent, out.stem, args.fps, args.pairs, args.workers, progress=not args.no_progress
            )
            for failure in result.failed:
                print(f"failed {failure['clip']}: {failure['error']}", file=sys.stderr)
            if result.manifest is None:
                raise ManifestError(f"no clip of {args.root} converted")
            path = result.manifest
        else:
            layout = FolderLayout(**{f: getattr(args, f) or None for f in FolderLayout.__dataclass_fields__})
            path = convert_folders(
                args.root, out, layout, args.pairs, args.captions, args.fps, progress=not args.no_progress
            )
    except (ManifestError, FileNotFoundError, VideoIOError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="itryon convert", description=__doc__)
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
