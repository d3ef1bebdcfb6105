"""Generate try-on videos with a trained run for every clip of a manifest, named by clip id.

``itryon infer --run runs/NAME/STAMP --manifest data/synthetic/val.jsonl --out preds/`` writes
``preds/<clip id>.mp4``, ready for ``itryon evaluate --pred preds --manifest ...``. A clip that cannot be used
(a manifest line that does not validate, a file that does not decode, a clip without a key the model reads)
is skipped and listed in ``preds/skipped.jsonl``; the others are generated, each at its own size (clips
batch with the clips after them of the same size).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from itryon.config import ConfigError, trust_targets
from itryon.data.contract import SkippedSample, collate
from itryon.data.datamodule import SKIPPED_FILE, SkipBadSamples
from itryon.data.manifest import InteractiveManifestDataset
from itryon.data.video_io import to_frames, write_video
from itryon.io_utils import append_line, remove_orphaned_temps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run", required=True, help="run folder of train.py (holds config.yaml and weights/ or checkpoints/)"
    )
    parser.add_argument("--manifest", required=True, help="interactive manifest (JSON lines) of the clips to generate")
    parser.add_argument("--out", required=True, help="folder for the generated MP4s")
    parser.add_argument(
        "--weights", help="safetensors or Lightning checkpoint (default: the run's weights/model.safetensors)"
    )
    parser.add_argument("--steps", type=int, help="sampling steps (default: the run's sampler)")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the run's sampler)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the first batch (batch i uses seed + i)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--trust-config",
        action="store_true",
        help="let the run's config.yaml build any _target_ (also: ITRYON_TRUST_CONFIG=1)",
    )


def run(args: argparse.Namespace) -> int:
    with trust_targets(getattr(args, "trust_config", False)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from itryon.training.run import load_run_module, required_inputs

    out = Path(args.out)
    report = out / SKIPPED_FILE
    try:
        module = load_run_module(Path(args.run), Path(args.weights) if args.weights else None).to(args.device)
        dataset = InteractiveManifestDataset(args.manifest, bad_records="skip", one_size=False)
        dataset.require_keys(required_inputs(module), skip=True)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    remove_orphaned_temps(out, recursive=False)  # what a killed earlier run was writing
    if report.exists():
        report.unlink()  # the report of this run only
    for rejected in dataset.rejected:
        append_line(
            report,
            json.dumps(
                {
                    "split": "infer",
                    "index": None,
                    "clip": rejected["clip"],
                    "error": f"ManifestError: {rejected['error']}",
                    "replaced_by": None,
                }
            ),
        )
        print(f"skipping {rejected['clip']}: {rejected['error']}", file=sys.stderr)
    safe = SkipBadSamples(dataset, replace=False, name="infer", report_path=report)
    written = 0
    for i, batch in enumerate(
        tqdm(_batches(safe, args.batch_size), desc="infer", unit="batch", disable=args.no_progress)
    ):
        batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        videos = module.generate(batch, num_steps=args.steps, guidance_scale=args.guidance, seed=args.seed + i)
        for video, meta in zip(videos, batch["meta"]):
            write_video(out / f"{meta['id']}.mp4", to_frames(video), fps=float(meta["fps"]))
            written += 1
    skipped = len(dataset.rejected) + len(safe.skipped)
    note = f"; skipped {skipped} clip(s), listed in {report}" if skipped else ""
    print(f"wrote {written} videos to {out}{note}")
    return 0


def _shape(sample: dict) -> tuple:
    return tuple(sorted((k, tuple(v.shape)) for k, v in sample.items() if torch.is_tensor(v)))


def _batches(dataset: SkipBadSamples, batch_size: int):
    """Batches of consecutive loadable clips of one shape (skipped clips are already reported)."""
    pending: list[dict] = []
    for index in range(len(dataset)):
        sample = dataset[index]
        if isinstance(sample, SkippedSample):
            continue
        if pending and (_shape(pending[0]) != _shape(sample) or len(pending) >= batch_size):
            yield collate(pending)
            pending = []
        pending.append(sample)
    if pending:
        yield collate(pending)


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="itryon infer", description=__doc__.splitlines()[0])
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
