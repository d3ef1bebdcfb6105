"""``python train.py`` / ``itryon train``: train from a config with dot-list overrides."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from itryon.cli.options import add_trust_config
from itryon.config import CONFIG_ROOT, ConfigError, to_yaml, trust_targets
from itryon.io_utils import UnreadableFileError

DEFAULT_CONFIG = CONFIG_ROOT / "default.yaml"
RUN_DIR_ENV = "ITRYON_RUN_DIR"
# errors of a config that validates but points at files that are missing or wrong: a message, not a traceback
BUILD_ERRORS = (ConfigError, FileNotFoundError, KeyError, UnreadableFileError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="YAML config (default: configs/default.yaml)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR_OR_CKPT",
        help="continue a run from its folder (its newest complete checkpoint) or a checkpoint",
    )
    add_trust_config(parser, "the config")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")


def run(args: argparse.Namespace) -> int:
    with trust_targets(getattr(args, "trust_config", False)):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    # frozen parts (VAE, text encoder) stay in eval mode on purpose; Lightning warns about it at every start
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
    from itryon.cache.store import CacheError
    from itryon.data.manifest import ManifestError
    from itryon.training.checkpoints import CheckpointError, check_resumable
    from itryon.training.run import (
        CONFIG_NAME,
        build,
        checkpoint_step,
        fit,
        load_run_config,
        new_run_dir,
        prepare_config,
        resume_target,
    )

    build_errors = (*BUILD_ERRORS, ManifestError, CheckpointError)

    try:
        if args.resume:
            run_dir, ckpt = resume_target(args.resume)
            cfg = load_run_config(run_dir, args.overrides)
        else:
            run_dir, ckpt = None, None
            cfg = prepare_config(args.config, args.overrides)
    except (ConfigError, FileNotFoundError, CheckpointError, UnreadableFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(to_yaml(cfg), end="")
        return 0
    # processes that Lightning launches for multi-device runs re-run this script: they join the parent's folder
    inherited = os.environ.get(RUN_DIR_ENV) if "LOCAL_RANK" in os.environ else None
    run_dir = run_dir or (Path(inherited) if inherited else new_run_dir(cfg))
    os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        try:
            trainer, module, datamodule = build(cfg, Path(run_dir), resume_step=checkpoint_step(ckpt))
            if ckpt is not None:
                overrides = f" with the overrides {' '.join(args.overrides)}" if args.overrides else ""
                check_resumable(Path(ckpt), module, f"{Path(run_dir) / CONFIG_NAME}{overrides}")
        except BaseException as exc:
            if ckpt is None and not inherited:
                for folder in (Path(run_dir), Path(run_dir).parent):  # a run that never started leaves no folder
                    _remove_if_empty(folder)
            if not isinstance(exc, build_errors):
                raise
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        try:
            fit(trainer, module, datamodule, cfg, Path(run_dir), ckpt)
        except (CheckpointError, UnreadableFileError, CacheError) as exc:  # a stale latent cache is refused at setup
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
    finally:
        os.environ.pop(RUN_DIR_ENV, None)
    print(f"run folder: {run_dir}")
    return 0


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:  # not empty (or already gone): leave it
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="train.py", description="Train an itryon model from a YAML config.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
