"""Write a run as a diffusers pipeline folder: ``itryon export RUN --out DIR``.

The folder (``model_index.json``, ``transformer/``, ``vae/``, ``text_encoder/``, ``scheduler/``, ``conditioning/``;
weights as safetensors) loads with ``ITryOnPipeline.from_pretrained(DIR)`` and gives the videos ``itryon infer``
gives on the same run, inputs and seed. ``--sampler`` and ``--steps`` set the scheduler and the default step count
the folder carries.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from itryon.cli.options import add_trust_config
from itryon.config import ConfigError, trust_targets
from itryon.diffusion.sampler import SOLVERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder of train.py (holds config.yaml and weights/)")
    parser.add_argument("--out", required=True, help="pipeline folder to write")
    parser.add_argument(
        "--weights", help="safetensors or Lightning checkpoint (default: the run's weights/model.safetensors)"
    )
    parser.add_argument("--sampler", choices=SOLVERS, help="the folder's scheduler (default: the run's sampler)")
    parser.add_argument("--steps", type=int, help="default sampling steps (default: the run's sampler)")
    add_trust_config(parser)


def run(args: argparse.Namespace) -> int:
    from itryon.inference.export import pipeline_from_run
    from itryon.inference.pipeline import scheduler_for

    with trust_targets(getattr(args, "trust_config", False)):
        try:
            pipe = pipeline_from_run(Path(args.run), Path(args.weights) if args.weights else None)
        except (ConfigError, FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.sampler is not None:
        pipe.scheduler = scheduler_for(pipe.sampler(sampler=args.sampler))
    if args.steps is not None:
        pipe.register_to_config(num_inference_steps=args.steps)
    pipe.save_pretrained(args.out, safe_serialization=True)
    print(f"wrote the pipeline of {args.run} to {args.out}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="itryon export", description=__doc__.splitlines()[0])
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
