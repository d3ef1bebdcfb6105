"""The counterfactual ISR judge on degenerate generations: what each scores on synthetic clips.

Rows: the ground truth (with and without noise of sigma 10/255) and the degenerate outputs of
``itryon.metrics.degenerate`` (counterfactual, constants, noise, mean frame, agnostic input, first frame,
50/50 blend, time shifts). Columns: ISR, the false-interaction rate on passive clips and, with
``--families``, ISR per family. Prints a Markdown table and writes ``benchmarks/results/judge_degenerate.json``.

    python benchmarks/judge_degenerate.py [--split val --clips 32 --seed 1] [--families standard,contact,caption,timing]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from itryon.data.contract import collate  # noqa: E402
from itryon.data.synthetic import SyntheticTryOnDataset  # noqa: E402
from itryon.metrics.degenerate import degenerate_outputs  # noqa: E402
from itryon.metrics.registry import build_metric, flatten_result, metric_extras, metric_spec  # noqa: E402


def judge_table(
    split: str, clips: int, seed: int, families: list[str] | None, batch_size: int = 8
) -> dict[str, dict[str, float]]:
    """Case -> flattened ``isr`` results over the clips."""
    dataset = SyntheticTryOnDataset(split, clips, seed, families=families)
    spec = metric_spec("isr")
    metrics: dict[str, object] = {}
    for start in range(0, clips, batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, clips))])
        for name, pred in degenerate_outputs(batch).items():
            metric = metrics.setdefault(name, build_metric("isr"))
            metric.update(pred, batch["video"], **metric_extras(spec, batch))
    return {name: flatten_result("isr", m.compute()) for name, m in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--split", default="val")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--families", help="comma-separated family mix (default: the standard clips)")
    args = parser.parse_args()
    families = args.families.split(",") if args.families else None
    start = time.perf_counter()
    table = judge_table(args.split, args.clips, args.seed, families)
    columns = [
        c for c in next(iter(table.values())) if not c.endswith(("interactions", "passive_clips")) and "chance" not in c
    ]
    first = next(iter(table.values()))
    print(f"{args.clips} clips of split {args.split!r}, seed {args.seed}, families {families or 'standard'}: "
          f"{int(first['isr_interactions'])} judged actions, {int(first['isr_passive_clips'])} judged passive clips; "
          f"chance (agnostic input) ISR {first.get('isr_chance', float('nan')):.3f}")  # fmt: skip
    print("| case | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
    out = Path(__file__).resolve().parent / "results" / "judge_degenerate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "split": args.split,
        "clips": args.clips,
        "seed": args.seed,
        "families": families,
        "seconds": time.perf_counter() - start,
        "results": table,
    }
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
