"""``itryon preprocess`` on synthetic-world videos: clips/s, and how close its estimates come to the world's truth.

The world's clips are written as plain inputs (``videos/<id>.mp4`` lossless, ``garments/<id>.png``), preprocessed
with the chosen estimators, and compared with what the world rendered: the IoU of the estimated agnostic mask
with the true one (per clip over all frames), the IoU of the estimated garment mask with the true in-shop
silhouette, the hand-detection rate, and the error of the estimated hand centres (pixels and fractions of the
frame height; mean per clip, and the median over all hand-frames) against the true ones, over the frames where a
hand was found. Prints a table and writes
``benchmarks/results/preprocess.json``.

    python benchmarks/preprocess.py [--clips 8] [--height 192] [--width 256] [--frames 17] [--workers 1]
        [--segmenter mediapipe] [--pose mediapipe] [--hands mediapipe]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from itryon.data.manifest import read_manifest  # noqa: E402
from itryon.data.synthetic.plan import plan_clip  # noqa: E402
from itryon.data.synthetic.spec import ClipSpec  # noqa: E402
from itryon.data.synthetic.world import generate_clip  # noqa: E402
from itryon.data.video_io import read_video, write_video  # noqa: E402
from itryon.preprocess.estimators import EstimatorSpec  # noqa: E402
from itryon.preprocess.hand_prior import hand_positions  # noqa: E402
from itryon.preprocess.pipeline import load_keypoints  # noqa: E402
from itryon.preprocess.runner import find_jobs, preprocess_split  # noqa: E402


def write_inputs(root: Path, clips: int, frames: int, height: int, width: int, split: str = "test") -> dict[str, dict]:
    """World clips as raw inputs; returns per clip id the true agnostic mask, garment mask and hand centres."""
    (root / "videos").mkdir(parents=True)
    (root / "garments").mkdir()
    truth = {}
    for index in range(clips):
        clip = generate_clip(split, index, 0, ClipSpec(num_frames=frames, height=height, width=width))
        cid = clip["meta"]["id"]
        write_video(root / "videos" / f"{cid}.mp4", clip["video"].transpose(1, 2, 3, 0), fps=8.0, lossless=True)
        Image.fromarray(clip["garment"].transpose(1, 2, 0)).save(root / "garments" / f"{cid}.png")
        plan = plan_clip(split, index, 0, ClipSpec(num_frames=frames, height=height, width=width, fps=8.0))
        centres = np.stack(
            [plan.motion.to_pixels(plan.tracks.center[h][:, None, :], height, width)[:, 0] for h in range(2)], axis=1
        )  # (T, 2, 2)
        truth[cid] = {
            "agnostic_mask": clip["agnostic_mask"][0] > 127,
            "garment_mask": clip["garment_mask"][0] > 127,
            "hands": centres,
        }
    return truth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--segmenter", default="mediapipe")
    parser.add_argument("--pose", default="mediapipe")
    parser.add_argument("--hands", default="mediapipe")
    parser.add_argument("--out", default="benchmarks/results/preprocess.json")
    args = parser.parse_args()
    spec = EstimatorSpec(segmenter=args.segmenter, pose=args.pose, hands=args.hands)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        truth = write_inputs(root / "in", args.clips, args.frames, args.height, args.width)
        jobs = find_jobs(root / "in" / "videos", root / "in" / "garments", root / "out", "test")
        start = time.perf_counter()
        result = preprocess_split(jobs, root / "out" / "test.jsonl", spec, workers=args.workers, progress=False)
        seconds = time.perf_counter() - start
        rows = []
        for record in read_manifest(root / "out" / "test.jsonl"):
            true = truth[record["id"]]
            mask = read_video(root / "out" / record["agnostic_mask"]).numpy()[..., 0] > 127
            with Image.open(root / "out" / record["garment_mask"]) as im:
                garment = np.asarray(im) > 127
            _, hands = load_keypoints(root / "out" / record["meta"]["keypoints"])
            found = hand_positions(hands)  # (T, 2, 2), NaN where not found
            err = np.linalg.norm(found - true["hands"], axis=-1)  # (T, 2)
            rows.append(
                {
                    "clip": record["id"],
                    "agnostic_iou": iou(mask, true["agnostic_mask"]),
                    "garment_iou": iou(garment, true["garment_mask"]),
                    "hand_detection": float(hands.present.mean()),
                    "hand_error_px": float(np.nanmean(err)) if hands.present.any() else None,
                    "hand_errors": err[np.isfinite(err)].tolist(),
                }
            )
    errors = [r["hand_error_px"] for r in rows if r["hand_error_px"] is not None]
    summary = {
        "clips_per_s": len(result.processed) / seconds,
        "agnostic_iou": float(np.mean([r["agnostic_iou"] for r in rows])) if rows else None,
        "garment_iou": float(np.mean([r["garment_iou"] for r in rows])) if rows else None,
        "hand_detection": float(np.mean([r["hand_detection"] for r in rows])) if rows else None,
        "hand_error_px": float(np.mean(errors)) if errors else None,
        "hand_error_frac_height": float(np.mean(errors)) / args.height if errors else None,
        "hand_error_median_px": float(np.median([e for r in rows for e in r["hand_errors"]])) if errors else None,
        "failed": result.failed,
    }
    print(
        f"preprocess: {len(result.processed)} clips of {args.frames}x{args.height}x{args.width}, estimators {spec.segmenter}/{spec.pose}/{spec.hands}, {args.workers} worker(s)"
    )
    print(f"{'clip':<22}{'agnostic IoU':>14}{'garment IoU':>13}{'hands found':>13}{'hand err px':>13}")
    for r in rows:
        err = "-" if r["hand_error_px"] is None else f"{r['hand_error_px']:.2f}"
        print(
            f"{r['clip']:<22}{r['agnostic_iou']:>14.3f}{r['garment_iou']:>13.3f}{r['hand_detection']:>13.2f}{err:>13}"
        )
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    print(
        f"{'mean':<22}{fmt(summary['agnostic_iou'], '14.3f')}{fmt(summary['garment_iou'], '13.3f')}{fmt(summary['hand_detection'], '13.2f')}{fmt(summary['hand_error_px'], '13.2f')}"
    )
    print(
        f"clips/s: {summary['clips_per_s']:.2f}   hand error / frame height: {fmt(summary['hand_error_frac_height'], '.3f')}   "
        f"median hand error: {fmt(summary['hand_error_median_px'], '.2f')} px   failed: {len(result.failed)}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"args": vars(args), "summary": summary, "clips": rows, "python": platform.python_version()}, indent=2
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
