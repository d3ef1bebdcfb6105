"""Clips per second of the synthetic world at the default size (64x48, 17 frames), in 1 and N processes.

Rows: ``generate_clip`` (uint8 arrays) and ``SyntheticTryOnDataset.__getitem__`` (contract tensors) in this
process; ``generate_clip`` in a pool of 1 and ``--workers`` processes; a torch DataLoader with ``--workers``
workers. Every row reports wall-clock clips/s and, where the work runs in processes we can time, clips per
CPU-second (``time.process_time`` summed over the processes doing the work): other jobs on a shared
machine lower the first but hardly the second, and ``workers x clips/CPU-s`` is what idle cores give.
Prints a table and writes ``benchmarks/results/synthetic_world.json``. Target: >= 200 clips/s on 2 cores.

    python benchmarks/synthetic_world.py [--clips 300] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from itryon.data.synthetic import ClipSpec, SyntheticTryOnDataset, generate_clip  # noqa: E402

TARGET = 200.0


def _generate(indices: list[int], num_frames: int, height: int, width: int) -> tuple[int, float]:
    """Generate the clips ``indices``; returns (clips, CPU seconds this process spent on them)."""
    torch.set_num_threads(1)
    cpu = time.process_time()
    for i in indices:
        generate_clip("train", i, 0, ClipSpec(num_frames, height, width))
    return len(indices), time.process_time() - cpu


def _in_process(fn, clips: int) -> tuple[float, float]:
    """(clips per wall-clock second, clips per CPU second of this process)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return clips / (time.perf_counter() - start), clips / max(time.process_time() - cpu, 1e-9)


def _in_pool(pool, workers: int, clips_per_worker: int, size: tuple[int, int, int], offset: int) -> tuple[float, float]:
    """(clips per wall-clock second, clips per CPU second summed over the workers) for ``workers`` equal chunks."""
    chunks = [list(range(offset + k * clips_per_worker, offset + (k + 1) * clips_per_worker)) for k in range(workers)]
    start = time.perf_counter()
    done = pool.starmap(_generate, [(c, *size) for c in chunks], chunksize=1)
    wall = time.perf_counter() - start
    clips = sum(n for n, _ in done)
    return clips / wall, clips / max(sum(cpu for _, cpu in done), 1e-9)


def _dataloader(workers: int, clips: int, size: tuple[int, int, int]) -> float:
    """Wall-clock clips/s of contract samples through a DataLoader with ``workers`` worker processes (start-up excluded)."""
    frames, height, width = size
    ds = SyntheticTryOnDataset("train", num_clips=clips + 4 * workers, num_frames=frames, height=height, width=width)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=None, num_workers=workers, multiprocessing_context="spawn", prefetch_factor=4
    )
    items = iter(loader)
    for _ in range(2 * workers):  # workers started and warm
        next(items)
    start = time.perf_counter()
    for _ in range(clips):
        next(items)
    rate = clips / (time.perf_counter() - start)
    del items
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--clips", type=int, default=300, help="clips per measurement (per worker in the pool rows)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--no-dataloader", action="store_true", help="skip the DataLoader row")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "synthetic_world.json"
    )
    args = parser.parse_args()
    if args.workers < 1 or args.clips < 1:
        parser.error(f"--workers and --clips must be >= 1, got {args.workers} and {args.clips}")
    torch.set_num_threads(1)
    size = (args.frames, args.height, args.width)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    _generate(list(range(5)), *size)  # warm-up

    rows: dict[str, tuple[float, float]] = {}
    rows["generate_clip, in process"] = _in_process(lambda: _generate(list(range(args.clips)), *size), args.clips)
    ds = SyntheticTryOnDataset(
        "train", num_clips=args.clips, num_frames=args.frames, height=args.height, width=args.width
    )
    rows["Dataset item (tensors), in process"] = _in_process(lambda: [ds[i] for i in range(args.clips)], args.clips)
    counts = sorted({1, args.workers})
    with mp.get_context("spawn").Pool(max(counts)) as pool:
        pool.starmap(_generate, [([0, 1], *size)] * max(counts), chunksize=1)  # start-up outside the timing
        for k, workers in enumerate(counts):
            name = f"generate_clip, pool of {workers} process{'es' if workers > 1 else ''}"
            rows[name] = _in_pool(pool, workers, args.clips, size, offset=(k + 1) * 100_000)
    if not args.no_dataloader:
        rows[f"DataLoader, {args.workers} workers (tensors)"] = (
            _dataloader(args.workers, args.clips, size),
            float("nan"),
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(
        f"synthetic world, {args.width}x{args.height}, {args.frames} frames, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), numpy {np.__version__}"
    )
    print(
        f"load average before the run: {load_before:.2f}, after: {load:.2f} (other jobs lower the wall-clock rates, not the CPU-time ones)"
    )
    print(f"{'what':42s} {'clips/s':>9s} {'ms/clip':>9s} {'clips/CPU-s':>12s}")
    for name, (rate, cpu_rate) in rows.items():
        cpu_text = f"{cpu_rate:12.1f}" if cpu_rate == cpu_rate else f"{'-':>12s}"
        print(f"{name:42s} {rate:9.1f} {1000.0 / rate:9.2f} {cpu_text}")
    pool_name = f"generate_clip, pool of {args.workers} process{'es' if args.workers > 1 else ''}"
    measured = rows[pool_name][0]
    idle = args.workers * rows[pool_name][1]
    print(
        f"{args.workers} processes: measured {measured:.1f} clips/s wall clock; {args.workers} idle cores x {rows[pool_name][1]:.1f} clips/CPU-s = {idle:.0f} clips/s"
    )
    print(
        f"target >= {TARGET:.0f} clips/s on 2 cores: wall clock {'met' if measured >= TARGET else 'NOT met'}, CPU-time estimate {'met' if idle >= TARGET else 'NOT met'}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "size": {"frames": args.frames, "height": args.height, "width": args.width},
                "clips_per_measurement": args.clips,
                "workers": args.workers,
                "cpu_count": os.cpu_count(),
                "clips_per_second": {k: v[0] for k, v in rows.items()},
                "clips_per_cpu_second": {k: v[1] for k, v in rows.items() if v[1] == v[1]},
                "idle_cores_estimate_clips_per_second": idle,
                "load_average": [load_before, load],
                "target_clips_per_second": TARGET,
                "target_met_wall_clock": measured >= TARGET,
                "target_met_cpu_time_estimate": idle >= TARGET,
                "numpy": np.__version__,
                "torch": torch.__version__,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
