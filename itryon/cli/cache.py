"""Precompute the VAE latents of every video condition and the text embeddings of every caption of a split."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning as L

from itryon.cache.build import build_cache, default_folder, signature
from itryon.cache.store import CacheError, LatentCache, StaleCacheError
from itryon.config import ConfigError, instantiate
from itryon.data.datamodule import SkipBadSamples
from itryon.training.run import prepare_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the training config (the same file and overrides as train.py)")
    parser.add_argument(
        "--split",
        default="train",
        choices=("train", "val", "test"),
        help="which dataset of the config (default: train)",
    )
    parser.add_argument(
        "--out", help="cache folder (default: <manifest folder>/cache/<manifest name>, where training looks)"
    )
    parser.add_argument("--rebuild", action="store_true", help="replace a cache that is there, stale or not")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value, as for train.py")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = prepare_config(args.config, args.overrides)
        L.seed_everything(
            int(cfg.get("seed", 0)), verbose=False
        )  # as train.py builds: seeded, data first, then the model
        datamodule = instantiate(cfg.data, "data")
        module = instantiate(cfg.model, "model")
        dataset = datamodule.datasets().get(args.split)
        if dataset is None:
            raise CacheError(f"the config's data has no '{args.split}' dataset")
        dataset = dataset.dataset if isinstance(dataset, SkipBadSamples) else dataset
        folder = Path(args.out) if args.out else default_folder(dataset)
        if folder is None:
            raise CacheError(f"the '{args.split}' dataset has no manifest: pass --out")
        if (folder / "index.json").is_file() and not args.rebuild:
            try:
                LatentCache.open(folder).check(**signature(module, dataset))
                print(f"{folder} is up to date (pass --rebuild to build it again)")
                return 0
            except StaleCacheError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        cache = build_cache(module, dataset, folder, progress=not args.no_progress)
    except (ConfigError, CacheError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(cache)} entries to {folder}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="itryon cache", description=__doc__)
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
