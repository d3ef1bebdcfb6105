"""Clips per second of the synthetic world at the default size (64x48, 17 frames).

Measures ``generate_clip`` (uint8 arrays) and ``SyntheticTryOnDataset.__getitem__`` (contract tensors) in one
process, and ``generate_clip`` in ``--workers`` processes (the way DataLoader workers use it). Prints a table
and writes ``benchmarks/results/synthetic_world.json``. Target: >= 200 clips/s on 2 cores.

    python benchmarks/synthetic_world.py [--clips 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import sys

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from itryon.data.synthetic import SyntheticTryOnDataset, generate_clip

TARGET = 200.0


def _generate(indices: list[int], num_frames: int, height: int, width: int) -> int:
    torch.set_num_threads(1)
    for i in indices:
        generate_clip("train", i, 0, num_frames, height, width)
    return len(indices)


def _rate(fn, clips: int) -> tuple[float, float]:
    """(clips per wall-clock second, clips per CPU second of this process); the second is robust to a busy machine."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return clips / (time.perf_counter() - start), clips / max(time.process_time() - cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "synthetic_world.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = (args.frames, args.height, args.width)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    _generate(list(range(5)), *size)  # warm-up

    rows = {}
    rows["generate_clip, 1 process"] = _rate(lambda: _generate(list(range(args.clips)), *size), args.clips)
    ds = SyntheticTryOnDataset("train", num_clips=args.clips, num_frames=args.frames, height=args.height, width=args.width)
    rows["Dataset item (tensors), 1 process"] = _rate(lambda: [ds[i] for i in range(args.clips)], args.clips)
    chunks = [list(map(int, c)) for c in np.array_split(np.arange(args.clips * args.workers), args.workers)]
    with mp.get_context("spawn").Pool(args.workers) as pool:
        pool.starmap(_generate, [([0, 1], *size)] * args.workers)  # start-up outside the timing
        wall, _ = _rate(lambda: pool.starmap(_generate, [(c, *size) for c in chunks]), args.clips * args.workers)
        rows[f"generate_clip, {args.workers} processes"] = (wall, float("nan"))  # CPU time is spent in the workers

    print(f"synthetic world, {args.width}x{args.height}, {args.frames} frames, {os.cpu_count()} cores ({platform.processor() or platform.machine()})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average before the run: {load_before:.2f}, after: {load:.2f} (a busy machine lowers the wall-clock rates)")
    print(f"{'what':40s} {'clips/s':>10s} {'ms/clip':>10s} {'clips/CPU-s':>12s}")
    for name, (rate, cpu_rate) in rows.items():
        print(f"{name:40s} {rate:10.1f} {1000.0 / rate:10.2f} {cpu_rate:12.1f}")
    one_core = rows["generate_clip, 1 process"][1]
    best = max(r[0] for r in rows.values())
    print(f"measured best {best:.1f} clips/s; from CPU time, 2 idle cores would give about {2 * one_core:.0f} clips/s")
    print(f"target >= {TARGET:.0f} clips/s on 2 cores: {'met' if best >= TARGET else 'NOT met'} (wall clock)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "size": {"frames": args.frames, "height": args.height, "width": args.width},
                "clips": args.clips,
                "workers": args.workers,
                "cpu_count": os.cpu_count(),
                "clips_per_second": {k: v[0] for k, v in rows.items()},
                "clips_per_cpu_second": {k: v[1] for k, v in rows.items() if v[1] == v[1]},
                "load_average": [load_before, load],
                "target_clips_per_second": TARGET,
                "numpy": np.__version__,
                "torch": torch.__version__,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
