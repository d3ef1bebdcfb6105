"""Compute video try-on metrics on a folder of generated videos against a folder of reference videos.

Videos are MP4 files or folders of PNG/JPG frames, matched by name (file stem or folder name). With
``--manifest`` (the interactive manifest, ``docs/manifest.md``), clips also get their actions,
interaction masks and counterfactual videos, which ``isr`` and the ``*_interaction*`` metrics need.
Writes a JSON file and exits non-zero when a ``--fail-if`` gate fails.
"""

from __future__ import annotations

import argparse
import math
import operator
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from itryon.data.contract import collate
from itryon.data.video_io import is_video_path, read_video, to_float
from itryon.io_utils import write_json
from itryon.metrics.clip_selection import CLIP_SELECTIONS
from itryon.metrics.registry import available_metrics, build_metric, flatten_result, metric_extras, metric_spec

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_GATE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")
DEFAULT_METRICS = "ssim,psnr"


class EvaluationError(ValueError):
    """The folders, manifest or options cannot be evaluated as asked."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, help="folder of generated videos (MP4 files or frame folders)")
    parser.add_argument(
        "--gt",
        help="folder of reference videos, matched to --pred by name (default with --manifest: the manifest's videos, matched by clip id)",
    )
    parser.add_argument(
        "--metrics",
        default=DEFAULT_METRICS,
        help=f"comma-separated metric names (default {DEFAULT_METRICS}); available: {', '.join(available_metrics())}",
    )
    parser.add_argument("--out", default="metrics.json", help="JSON file to write (default metrics.json)")
    parser.add_argument(
        "--fail-if",
        action="append",
        default=[],
        metavar="GATE",
        help="fail (exit 1) when e.g. 'lpips>0.2' holds; repeatable",
    )
    parser.add_argument(
        "--manifest",
        help="interactive manifest (JSON lines, docs/manifest.md) giving actions, interaction masks and counterfactuals per clip id",
    )
    parser.add_argument("--weights", help="folder of metric weight files (default $ITRYON_WEIGHTS)")
    parser.add_argument(
        "--vfid-protocol", default="catv2ton", choices=["catv2ton", "rgb"], help="VFID protocol (default catv2ton)"
    )
    parser.add_argument(
        "--vfid-clips", default="all", choices=list(CLIP_SELECTIONS),
        help="VFID clip selection: all (default) or the reference script's, as in its two public variants (benchmarks/README.md)",
    )  # fmt: skip
    parser.add_argument(
        "--paired-protocol",
        default="standard",
        choices=["standard", "catv2ton"],
        help="SSIM border and LPIPS backbone: standard = skimage-style SSIM + alex; catv2ton = torchmetrics SSIM + squeeze",
    )
    parser.add_argument(
        "--lpips-net", choices=["alex", "vgg", "squeeze"], help="LPIPS backbone (overrides --paired-protocol)"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="videos per metric update (default 4)")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="torch device (default cuda if available)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def parse_gate(text: str) -> tuple[str, str, float]:
    m = _GATE.match(text)
    if not m:
        raise EvaluationError(
            f"--fail-if {text!r}: expected NAME OP NUMBER with OP one of {list(_OPS)}, e.g. 'lpips>0.2'"
        )
    return m.group(1), m.group(2), float(m.group(3))


def _videos(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):  # hidden files, e.g. a writer's temporary file
            continue
        if is_video_path(p):
            name = p.stem if p.is_file() else p.name
            if name in found:
                raise EvaluationError(f"{folder}: two videos are named {name!r}: {found[name].name} and {p.name}")
            found[name] = p
    if not found:
        raise EvaluationError(f"{folder}: holds no videos (MP4 files or frame folders)")
    return found


def match_videos(
    pred_dir: str | Path, gt: str | Path | dict[str, Path], gt_label: str = "--gt"
) -> list[tuple[str, Path, Path]]:
    """``(name, pred, gt)`` for videos present on both sides; any unmatched name is an error.

    ``gt`` is a folder, or a mapping name -> video path (the manifest's clips).
    """
    pred = _videos(Path(pred_dir))
    refs = dict(gt) if isinstance(gt, dict) else _videos(Path(gt))
    label = gt_label if isinstance(gt, dict) else f"--gt {gt}"
    only_pred, only_gt = sorted(set(pred) - set(refs)), sorted(set(refs) - set(pred))
    if only_pred or only_gt:
        raise EvaluationError(
            f"unmatched video names: only in --pred {pred_dir}: {only_pred[:10]}{' ...' if len(only_pred) > 10 else ''}; "
            f"only in {label}: {only_gt[:10]}{' ...' if len(only_gt) > 10 else ''}"
        )
    return [(name, pred[name], refs[name]) for name in sorted(pred)]


def _metric_options(name: str, args: argparse.Namespace) -> dict[str, Any]:
    options = metric_spec(name).options()
    chosen: dict[str, Any] = {}
    if name.startswith("vfid") and "protocol" in options:
        chosen["protocol"] = args.vfid_protocol
    if name.startswith("vfid") and "clip_selection" in options:
        chosen["clip_selection"] = args.vfid_clips
    if (name.startswith("ssim") or name.startswith("lpips")) and "protocol" in options:
        chosen["protocol"] = args.paired_protocol
    if name.startswith("lpips") and args.lpips_net:
        chosen["net"] = args.lpips_net
    return chosen


def _read_rgb(path: Path) -> torch.Tensor:
    """``(3, T, H, W)`` in [-1, 1] from an RGB video file or frame folder."""
    frames = read_video(path)  # (T, H, W, C) uint8
    if frames.shape[3] != 3:
        raise EvaluationError(f"{path}: expected an RGB video, it has {frames.shape[3]} channel(s)")
    return to_float(frames)


def _sample(name: str, pred_path: Path, gt_path: Path, clips: Clips | None) -> dict[str, Any]:
    """The prediction and its reference ``(3, T, H, W)``; with the manifest's clips, the clip's contract sample
    (actions, captions, masks, counterfactual ...) with ``gt_path``'s video as the reference."""
    pred = _read_rgb(pred_path)
    if clips is None:
        sample: dict[str, Any] = {"video": _read_rgb(gt_path)}
    else:
        if name not in clips.index:
            raise EvaluationError(f"{name!r} ({gt_path}) has no clip with that id in the manifest {clips.dataset.path}")
        sample = clips.dataset[clips.index[name]]
        if gt_path != clips.videos[name]:  # a --gt folder's video is the reference, the manifest gives the rest
            sample = {**sample, "video": _read_rgb(gt_path)}
    video = sample["video"]
    if pred.shape[1] != video.shape[1]:
        raise EvaluationError(f"{name!r}: {pred_path} has {pred.shape[1]} frames, {gt_path} has {video.shape[1]}")
    if pred.shape[2:] != video.shape[2:]:
        raise EvaluationError(
            f"{name!r}: {pred_path} is {pred.shape[3]}x{pred.shape[2]}, {gt_path} is {video.shape[3]}x{video.shape[2]} (W x H)"
        )
    return {"pred": pred, **sample}


def evaluate(
    pairs: list[tuple[str, Path, Path]],
    metrics: dict[str, Any],
    clips: Clips | None = None,
    batch_size: int = 4,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, float]:
    """Update every metric over the video pairs (batching same-shaped videos with the dataset's ``collate``) and
    return flat results; ``clips`` (:func:`load_clips`) give each pair its clip's annotations."""
    built = {name: (metric_spec(name), m.to(device)) for name, m in metrics.items()}
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        batch = collate(pending)
        pred = batch.pop("pred").to(device)
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        for spec, metric in built.values():
            metric.update(pred, batch["video"], **metric_extras(spec, batch))
        pending.clear()

    for name, pred_path, gt_path in tqdm(pairs, desc="evaluate", unit="video", disable=not progress):
        sample = _sample(name, pred_path, gt_path, clips)
        if pending and (
            pending[0]["video"].shape != sample["video"].shape
            or set(pending[0]) != set(sample)
            or len(pending) >= batch_size
        ):
            flush()
        pending.append(sample)
    if pending:
        flush()
    results: dict[str, float] = {}
    for name, (_, metric) in built.items():
        results.update(flatten_result(name, metric.compute()))
    return results


@dataclass(frozen=True)
class Clips:
    """A manifest's clips as contract samples (:class:`~itryon.data.manifest.InteractiveManifestDataset`), by id."""

    dataset: Any  # InteractiveManifestDataset
    index: dict[str, int]  # clip id -> dataset index
    videos: dict[str, Path]  # clip id -> the manifest's video of the clip


def load_clips(manifest: str | Path) -> Clips:
    """The clips of ``manifest``, read as training reads them; any size (each pairs with its own prediction)."""
    from itryon.data.manifest import InteractiveManifestDataset

    dataset = InteractiveManifestDataset(manifest, one_size=False)
    ids = [dataset.clip_id(i) for i in range(len(dataset))]
    return Clips(
        dataset, {c: i for i, c in enumerate(ids)}, {c: dataset.root / r["video"] for c, r in zip(ids, dataset.records)}
    )


def run(args: argparse.Namespace) -> int:
    try:
        names = [n.strip() for n in args.metrics.split(",") if n.strip()]
        if not names:
            raise EvaluationError("--metrics is empty")
        specs = {n: metric_spec(n) for n in names}
        gates = [parse_gate(g) for g in args.fail_if]
        needs_manifest = [n for n, s in specs.items() if set(s.required_keys) - {"caption"}]
        if needs_manifest and not args.manifest:
            raise EvaluationError(f"metric(s) {needs_manifest} need per-clip annotations: pass --manifest")
        if args.gt is None and args.manifest is None:
            raise EvaluationError(
                "pass --gt (a folder of reference videos) or --manifest (whose clips are the references)"
            )
        clips = load_clips(args.manifest) if args.manifest else None
        pairs = match_videos(args.pred, args.gt if args.gt is not None else clips.videos, f"--manifest {args.manifest}")
        metrics = {n: build_metric(n, weights_dir=args.weights, **_metric_options(n, args)) for n in names}
        protocols = {n: {"metric": n, **(m.describe() if hasattr(m, "describe") else {})} for n, m in metrics.items()}
        results = evaluate(pairs, metrics, clips, args.batch_size, args.device, progress=not args.no_progress)
    except (EvaluationError, KeyError, TypeError, ValueError, OSError, RuntimeError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        print(f"itryon evaluate: error: {message}", file=sys.stderr)
        return 2
    gate_results = []
    for metric, op, threshold in gates:
        if metric not in results:
            print(
                f"itryon evaluate: error: --fail-if names {metric!r}, which was not computed ({sorted(results)})",
                file=sys.stderr,
            )
            return 2
        value = results[metric]
        failed = not math.isfinite(value) or bool(_OPS[op](value, threshold))  # nothing measured fails a gate
        gate_results.append(
            {"gate": f"{metric}{op}{threshold:g}", "value": value if math.isfinite(value) else None, "failed": failed}
        )
    record = {
        "pred": str(args.pred),
        "gt": str(args.gt if args.gt is not None else args.manifest),
        "videos": len(pairs),
        "metrics": {k: v if math.isfinite(v) else None for k, v in results.items()},  # null: nothing to measure
        "higher_is_better": {n: specs[n].higher_is_better for n in names},
        "protocols": protocols,
        "gates": gate_results,
        "passed": not any(g["failed"] for g in gate_results),
    }
    out = write_json(args.out, record, allow_nan=False)
    width = max(len(k) for k in results) if results else 0
    for k, v in results.items():
        print(f"{k:<{width}}  {v:.6g}")
    for g in gate_results:
        print(f"gate {g['gate']}: {'FAILED' if g['failed'] else 'ok'} (value {g['value']})")
    print(f"wrote {out}")
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="itryon evaluate", description=__doc__.strip().splitlines()[0])
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
