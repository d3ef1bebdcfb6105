"""Write a split of the synthetic interactive try-on world: ``itryon synth --out DIR --split train --num N --seed S``.

Writes ``DIR/<split>.jsonl`` (the interactive manifest, docs/manifest.md) and the clips' files under
``DIR/<split>/``; with ``--preview`` also ``DIR/<split>_preview.png``, a contact sheet of the first clips
(rows: video, hand prior, agnostic, counterfactual; red bars mark action frames, white bars passive gestures).
``--families contact,caption,timing`` writes benchmark-family clips instead (a comma-separated list takes
turns clip by clip; ``standard`` names the standard clips), e.g. a test split mixing every family:
``itryon synth --out DIR --split test --num 256 --families standard,contact,caption,timing``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from itryon.data.synthetic.spec import ClipSpec

DEFAULT = ClipSpec()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder (gets <split>.jsonl and <split>/)")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"))
    parser.add_argument("--num", type=int, default=64, help="number of clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start-index", type=int, default=0, help="index of the first clip")
    parser.add_argument("--frames", type=int, default=DEFAULT.num_frames, help="frames per clip (Wan-style 1 + 4k)")
    parser.add_argument("--height", type=int, default=DEFAULT.height)
    parser.add_argument("--width", type=int, default=DEFAULT.width)
    parser.add_argument("--fps", type=float, default=DEFAULT.fps)
    parser.add_argument(
        "--passive-fraction",
        type=float,
        default=DEFAULT.passive_fraction,
        help="share of clips with passive look-alike gestures",
    )
    parser.add_argument(
        "--families",
        "--family",
        dest="families",
        help="comma-separated benchmark families to mix (standard, contact, caption, timing); default: the standard clips",
    )
    parser.add_argument(
        "--format", default="mp4", choices=("mp4", "png"), help="RGB videos as lossless MP4 or PNG frame folders"
    )
    parser.add_argument("--preview", action="store_true", help="also write DIR/<split>_preview.png")
    parser.add_argument("--preview-clips", type=int, default=6, help="clips in the contact sheet")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from itryon.data.synthetic import contact_sheet, generate_clip, write_split
    from itryon.data.synthetic.families import family_mix, mixed_clip
    from itryon.io_utils import atomic_path

    try:
        mix = family_mix(
            [f.strip() for f in args.families.split(",") if f.strip()] if args.families is not None else None
        )
    except ValueError as exc:
        print(f"itryon synth: error: --families: {exc}", file=sys.stderr)
        return 2
    try:
        spec = ClipSpec(args.frames, args.height, args.width, args.fps, args.passive_fraction)
    except ValueError as exc:
        print(f"itryon synth: error: {exc}", file=sys.stderr)
        return 2
    manifest = write_split(
        args.out,
        args.split,
        args.num,
        seed=args.seed,
        spec=spec,
        video_format=args.format,
        start_index=args.start_index,
        progress=not args.no_progress,
        families=mix,
    )
    print(f"wrote {args.num} clips of split {args.split!r} to {manifest}")
    if args.preview and args.num > 0:
        indices = range(args.start_index, args.start_index + min(args.num, args.preview_clips))
        picks = [(None, i) if mix is None else mixed_clip(i, mix) for i in indices]
        clips = [generate_clip(args.split, i, args.seed, spec, family=f) for f, i in picks]
        path = Path(args.out) / f"{args.split}_preview.png"
        with atomic_path(path) as tmp:
            Image.fromarray(contact_sheet(clips)).save(tmp, format="PNG")
        print(f"wrote the contact sheet {path}")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="itryon synth", description=__doc__.strip().splitlines()[0])
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
