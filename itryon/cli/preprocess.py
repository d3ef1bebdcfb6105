"""Preprocess person videos and garment images into a split of the interactive manifest (docs/preprocessing.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from itryon.preprocess.agnostic import CATEGORIES
from itryon.preprocess.captions import CaptionError
from itryon.preprocess.estimators import REGISTRY, EstimatorError, EstimatorSpec
from itryon.preprocess.runner import CaptionSpec, PreprocessError, find_jobs, preprocess_split


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 480x832, got {text!r}") from None
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--videos", required=True, help="folder of person videos (MP4 or other containers, or folders of frames)"
    )
    parser.add_argument("--garments", required=True, help="folder of in-shop garment images")
    parser.add_argument(
        "--out", required=True, help="manifest folder: writes OUT/<split>.jsonl and OUT/<split>/<clip>/"
    )
    parser.add_argument("--split", default="train", help="split name (default: train)")
    parser.add_argument(
        "--pairs",
        help="file of 'clip garment [category]' lines (default: garments named like the clips, or the only garment)",
    )
    parser.add_argument(
        "--category",
        default="upper",
        choices=CATEGORIES,
        help="garment category of clips the pairs file gives none (default: upper)",
    )
    parser.add_argument("--captions", help="captions file: JSON, JSON lines or CSV with spans in frames or seconds")
    parser.add_argument(
        "--caption-model", help="local folder of a video-language model that labels frames (e.g. Qwen2-VL)"
    )
    parser.add_argument(
        "--caption-every", type=int, default=4, help="label every N-th frame with --caption-model (default: 4)"
    )
    parser.add_argument(
        "--segmenter", default="mediapipe", help=f"person segmenter: {', '.join(REGISTRY['segmenter'])} or module:Class"
    )
    parser.add_argument(
        "--pose", default="mediapipe", help=f"body pose estimator: {', '.join(REGISTRY['pose'])} or module:Class"
    )
    parser.add_argument(
        "--hands", default="mediapipe", help=f"hand estimator: {', '.join(REGISTRY['hands'])} or module:Class"
    )
    parser.add_argument("--parser-model", help="SCHP-style human-parsing ONNX file (sets --segmenter onnx)")
    parser.add_argument(
        "--densepose", help="folder of <clip>/ DensePose IUV frames computed elsewhere (sets --segmenter densepose)"
    )
    parser.add_argument("--pose-model", help="RTMPose/DWPose ONNX file (sets --pose onnx)")
    parser.add_argument(
        "--pose-keypoints", help="folder of <clip>.json body keypoints computed elsewhere (sets --pose file)"
    )
    parser.add_argument(
        "--hand-keypoints", help="folder of <clip>.json hand keypoints, e.g. from HaMeR (sets --hands file)"
    )
    parser.add_argument("--workers", type=int, default=1, help="processes working on clips in parallel (default: 1)")
    parser.add_argument("--fps", type=float, help="frame rate, for frame folders or to override the videos'")
    parser.add_argument("--size", type=_size, help="resize frames to HEIGHTxWIDTH (the video is then written too)")
    parser.add_argument("--max-frames", type=int, help="keep at most this many frames of each clip")
    parser.add_argument("--redo", action="store_true", help="process finished clips again (default: skip them)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def spec_from_args(args: argparse.Namespace) -> EstimatorSpec:
    spec = EstimatorSpec(segmenter=args.segmenter, pose=args.pose, hands=args.hands)
    for flag, kind, name, key in (
        ("parser_model", "segmenter", "onnx", "model"),
        ("densepose", "segmenter", "densepose", "folder"),
        ("pose_model", "pose", "onnx", "model"),
        ("pose_keypoints", "pose", "file", "folder"),
        ("hand_keypoints", "hands", "file", "folder"),
    ):
        value = getattr(args, flag)
        if value:
            setattr(spec, kind, name)
            spec.args[kind] = {key: value}
    return spec


def run(args: argparse.Namespace) -> int:
    try:
        out = Path(args.out)
        jobs = find_jobs(
            Path(args.videos),
            Path(args.garments),
            out,
            args.split,
            Path(args.pairs) if args.pairs else None,
            args.category,
            fps=args.fps,
            size=args.size,
            max_frames=args.max_frames,
        )
        captions = CaptionSpec(file=args.captions, model=args.caption_model, every=args.caption_every)
        spec = spec_from_args(args)
        if args.workers <= 1:  # build here so that a missing package or file stops the run before any clip
            spec.build()
            captions.build()
        result = preprocess_split(
            jobs,
            out / f"{args.split}.jsonl",
            spec,
            captions,
            args.workers,
            progress=not args.no_progress,
            redo=args.redo,
        )
    except (PreprocessError, EstimatorError, CaptionError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{len(result.processed)} clip(s) processed, {len(result.skipped)} already finished, {len(result.failed)} failed"
    )
    if result.failed:
        print(f"failures: {out / f'{args.split}.failures.jsonl'}", file=sys.stderr)
    if result.manifest is not None:
        print(f"wrote {result.manifest}")
    return 1 if result.failed else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="itryon preprocess", description=__doc__)
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
