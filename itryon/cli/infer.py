"""Generate try-on videos with a trained run for every clip of a manifest, named by clip id.

``itryon infer --run runs/NAME/STAMP --manifest data/synthetic/val.jsonl --out preds/`` writes
``preds/<clip id>.mp4`` (H.264 yuv420p, plays in browsers), ready for ``itryon evaluate --pred preds --manifest ...``;
``--format png`` writes lossless PNG frame folders ``preds/<clip id>/`` instead. The clips need no ground-truth
``video`` (the run's validation transforms apply to them); they run through the run's
:class:`~itryon.inference.pipeline.ITryOnPipeline`, so ``itryon export`` + ``ITryOnPipeline.from_pretrained`` give
the same videos for the same inputs and seeds. Any length and size: ``--frames`` keeps the first frames,
``--height/--width`` set the size the model runs at (outputs come back at the clip's size), ``--window`` runs long
clips in overlapping windows. A clip that cannot be used (a manifest line that does not validate, a file that does
not decode, a clip without a key the model reads) is skipped and listed in ``preds/skipped.jsonl``; the others are
generated, each at its own size (clips batch with the clips after them of the same size).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from itryon.cli.options import add_trust_config
from itryon.config import ConfigError, trust_targets
from itryon.data.contract import SkippedSample, collate
from itryon.data.datamodule import SKIPPED_FILE, SkipBadSamples
from itryon.data.manifest import InteractiveManifestDataset
from itryon.data.video_io import to_frames, write_playable_video, write_video
from itryon.diffusion.sampler import SOLVERS
from itryon.io_utils import append_line, remove_orphaned_temps

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
    parser.add_argument("--sampler", choices=SOLVERS, help="flow solver (default: the run's sampler)")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the run's sampler)")
    parser.add_argument("--garment-guidance", type=float, default=1.0, help="guidance scale of the garment (1: off)")
    parser.add_argument(
        "--text-guidance", type=float, default=1.0, help="guidance scale of the global and action captions (1: off)"
    )
    parser.add_argument("--hand-guidance", type=float, default=1.0, help="guidance scale of the hand prior (1: off)")
    parser.add_argument("--frames", type=int, help="generate the first FRAMES frames of each clip (default: all)")
    parser.add_argument("--height", type=int, help="height the model runs at (the output keeps the clip's size)")
    parser.add_argument("--width", type=int, help="width the model runs at (the output keeps the clip's size)")
    parser.add_argument("--window", type=int, help="frames per temporal window for long clips (1 + 4k; default: one)")
    parser.add_argument("--overlap", type=int, default=4, help="frames shared by consecutive windows (default: 4)")
    parser.add_argument("--paste-back", action="store_true", help="keep the source frames outside the generated region")
    parser.add_argument(
        "--precision", choices=tuple(PRECISIONS), default="fp32", help="autocast precision of the model (default: fp32)"
    )
    parser.add_argument(
        "--format", choices=("mp4", "png"), default="mp4", help="mp4: H.264 for people; png: lossless frame folders"
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the first batch (batch i uses seed + i)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_trust_config(parser)


def run(args: argparse.Namespace) -> int:
    with trust_targets(getattr(args, "trust_config", False)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from itryon.inference.export import pipeline_from_run
    from itryon.training.run import load_run_config, required_inputs

    out = Path(args.out)
    report = out / SKIPPED_FILE
    try:
        pipe = pipeline_from_run(Path(args.run), Path(args.weights) if args.weights else None).to(args.device)
        dataset = InteractiveManifestDataset(
            args.manifest,
            bad_records="skip",
            one_size=False,
            targets=False,
            transforms=validation_transforms(load_run_config(Path(args.run), ["model.init_from=null"])),
        )
        dataset.require_keys(required_inputs(pipe.denoiser), skip=True)
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
        dtype = PRECISIONS[args.precision]
        with torch.autocast(torch.device(args.device).type, dtype=dtype, enabled=dtype is not None):
            videos = pipe(
                batch=batch,
                num_frames=args.frames,
                height=args.height,
                width=args.width,
                num_inference_steps=args.steps,
                sampler=args.sampler,
                guidance_scale=args.guidance,
                garment_guidance=args.garment_guidance,
                text_guidance=args.text_guidance,
                hand_guidance=args.hand_guidance,
                window=args.window,
                overlap=args.overlap,
                paste_back=True if args.paste_back else None,
                seed=args.seed + i,
            ).frames.float()
        for video, meta in zip(videos, batch["meta"]):
            frames = to_frames(video)
            if args.format == "png":
                write_video(out / str(meta["id"]), frames)
            else:
                write_playable_video(out / f"{meta['id']}.mp4", frames, fps=float(meta["fps"]))
            written += 1
    skipped = len(dataset.rejected) + len(safe.skipped)
    note = f"; skipped {skipped} clip(s), listed in {report}" if skipped else ""
    print(f"wrote {written} videos to {out}{note}")
    return 0


def validation_transforms(cfg) -> list:
    """The transforms of the run's validation dataset (``data.val.transforms``), built from the run's config."""
    from itryon.config import instantiate

    val = cfg.get("data", {}).get("val") if "data" in cfg else None
    entries = val.get("transforms") if val is not None and hasattr(val, "get") else None
    return list(instantiate(entries, "data.val.transforms")) if entries else []


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
