"""Train and score every (experiment, seed) cell of an ablation, then write a table with confidence intervals.

``itryon ablate --experiments itryon_full,baseline --seeds 0,1,2 --out ablations/study`` trains each
experiment of ``configs/experiment/`` with each seed, scores it on the synthetic test split and writes
``results.md``, ``results.json`` and ``results.png`` into ``--out``. Run it again to continue: finished
cells are skipped and a cell stopped mid-training resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import shlex
import sys

DEFAULT_METRICS = "ssim,psnr,ssim_interaction,isr"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from itryon.ablation.plan import DEFAULT_EXPERIMENTS, EXPERIMENT_DIR

    experiments = ",".join(DEFAULT_EXPERIMENTS)
    parser.add_argument(
        "--experiments",
        default=experiments,
        help=f"comma-separated experiment names (files of --experiment-dir) or YAML paths (default {experiments})",
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default 0,1,2)")
    parser.add_argument("--out", required=True, help="output folder: cells/, results.md, results.json, results.png")
    parser.add_argument(
        "--experiment-dir",
        default=str(EXPERIMENT_DIR),
        help="folder of experiment YAML files (default configs/experiment)",
    )
    parser.add_argument(
        "--base-config",
        help="YAML file of keys laid over every experiment before --overrides (e.g. a study's steps and data sizes)",
    )
    parser.add_argument(
        "--overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides applied to every cell, e.g. trainer.max_steps=200",
    )
    parser.add_argument(
        "--metrics",
        default=DEFAULT_METRICS,
        help=f"comma-separated metric names of the registry (default {DEFAULT_METRICS})",
    )
    parser.add_argument(
        "--eval-split", default="test", choices=["train", "val", "test"], help="split scored (default test)"
    )
    parser.add_argument(
        "--num-eval-clips",
        type=int,
        default=32,
        help="clips scored per cell (default 32; with a manifest: its first N)",
    )
    parser.add_argument(
        "--eval-seed", type=int, help="seed of the synthetic evaluation clips (default: the split's, 2 for test)"
    )
    parser.add_argument("--eval-manifest", help="score the clips of this interactive manifest instead of the config's")
    parser.add_argument("--sample-steps", type=int, help="sampling steps when generating (default: each run's sampler)")
    parser.add_argument(
        "--sample-seed", type=int, default=0, help="sampling seed of the first batch (batch i uses seed + i; default 0)"
    )
    parser.add_argument("--weights", help="folder of metric weight files (default $ITRYON_WEIGHTS)")
    parser.add_argument("--batch-size", type=int, default=2, help="clips per generation batch (default 2)")
    parser.add_argument("--device", help="device for generation and metrics (default cuda if available)")
    parser.add_argument(
        "--confidence", type=float, default=0.95, help="confidence level of the intervals (default 0.95)"
    )
    parser.add_argument(
        "--launcher",
        default="local",
        choices=["local", "slurm"],
        help="local: cells one after another in this process; slurm: one job per cell through submitit",
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="with slurm: submit and exit; run again later to collect the table"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="write the table from the finished cells, train nothing"
    )
    slurm = parser.add_argument_group("slurm (submitit AutoExecutor parameters)")
    slurm.add_argument("--partition", help="slurm partition")
    slurm.add_argument("--timeout-min", type=int, default=180, help="time limit per cell in minutes (default 180)")
    slurm.add_argument("--gpus-per-node", type=int, help="GPUs per cell")
    slurm.add_argument("--cpus-per-task", type=int, help="CPU cores per cell")
    slurm.add_argument("--mem-gb", type=int, help="memory per cell in GB")
    slurm.add_argument("--array-parallelism", type=int, help="at most this many cells at once")
    slurm.add_argument(
        "--slurm-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other submitit slurm_KEY parameter, e.g. account=proj; repeatable",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def cluster_parameters(args: argparse.Namespace) -> dict[str, object]:
    params: dict[str, object] = {"timeout_min": args.timeout_min}
    for key in ("gpus_per_node", "cpus_per_task", "mem_gb"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    if args.partition:
        params["slurm_partition"] = args.partition
    if args.array_parallelism:
        params["slurm_array_parallelism"] = args.array_parallelism
    for item in args.slurm_param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm-param {item!r}: expected KEY=VALUE, e.g. account=proj")
        params[f"slurm_{key}"] = int(value) if value.isdigit() else value
    return params


def run(args: argparse.Namespace) -> int:
    from itryon.ablation.cell import EvalSettings
    from itryon.ablation.plan import base_config_overrides, parse_list, parse_seeds
    from itryon.ablation.runner import RESULTS_JSON, RESULTS_MD, RESULTS_PNG, run_ablation
    from itryon.config import ConfigError

    try:
        import torch

        overrides = [*(base_config_overrides(args.base_config) if args.base_config else []), *args.overrides]
        evaluation = EvalSettings(
            metrics=tuple(parse_list(args.metrics, "--metrics")),
            split=args.eval_split,
            num_clips=args.num_eval_clips,
            data_seed=args.eval_seed,
            manifest=args.eval_manifest,
            sample_steps=args.sample_steps,
            sample_seed=args.sample_seed,
            weights_dir=args.weights,
            batch_size=args.batch_size,
            device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        )
        report = run_ablation(
            args.out,
            parse_list(args.experiments, "--experiments"),
            parse_seeds(args.seeds),
            overrides,
            evaluation,
            experiment_dir=args.experiment_dir,
            launcher=args.launcher,
            cluster_parameters=cluster_parameters(args),
            wait_for_jobs=not args.no_wait,
            report_only=args.report_only,
            confidence=args.confidence,
            progress=not args.no_progress,
            command=shlex.join(getattr(args, "command_line", ["itryon", "ablate", *sys.argv[1:]])),
        )
    except (ConfigError, FileNotFoundError, KeyError, ValueError, ImportError) as exc:
        print(f"itryon ablate: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    if report is None:
        print(f"submitted; run the same command again to collect the table into {args.out}")
        return 0
    print(
        f"{len(report['cells'])} cells, {len(report['missing_cells'])} missing; wrote {args.out}/{RESULTS_MD}, {RESULTS_JSON}, {RESULTS_PNG}"
    )
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="itryon ablate", description=__doc__.strip().splitlines()[0])
    add_arguments(_parser)
    raise SystemExit(run(_parser.parse_args()))
