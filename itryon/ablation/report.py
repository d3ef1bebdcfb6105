"""The ablation table: per experiment, mean ± confidence half-width of every metric key over seeds, with the
reference rows; as a dict (the JSON file), as Markdown, and as a PNG bar chart."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from itryon.ablation.stats import summarize, summarize_cells

REFERENCE_LABELS = {"copy_input": "copy input", "garment_mean_fill": "garment-mean fill"}


def build_report(
    cells: Sequence[Mapping[str, Any]],
    experiments: Sequence[str],
    seeds: Sequence[int],
    references: Mapping[str, Mapping[str, float | None]] | None = None,
    confidence: float = 0.95,
    higher_is_better: Mapping[str, bool] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The results record: ``cells`` (each cell's result), ``summary`` (experiment -> key -> stats),
    ``wall_seconds`` (experiment -> stats), ``references`` (name -> key -> value) and the key order.
    ``higher_is_better`` gives the direction of the keys that have one (default: what the cells recorded)."""
    references = {k: dict(v) for k, v in (references or {}).items()}
    found = {(c["experiment"], int(c["seed"])) for c in cells}
    keys: list[str] = []
    higher: dict[str, bool] = {}
    for cell in cells:
        keys += [k for k in cell["metrics"] if k not in keys]
        higher.update(cell.get("higher_is_better", {}))
    for values in references.values():
        keys += [k for k in values if k not in keys]
    if higher_is_better is not None:
        higher = dict(higher_is_better)
    summary = summarize_cells(cells, confidence)
    wall = {e: summarize((c["wall_seconds"] for c in cells if c["experiment"] == e), confidence) for e in experiments}
    return {
        **extra,
        "confidence": confidence,
        "experiments": list(experiments),
        "seeds": list(seeds),
        "metric_keys": keys,
        "higher_is_better": {k: bool(higher[k]) for k in keys if k in higher},
        "summary": {e: summary.get(e, {}) for e in experiments},
        "wall_seconds": wall,
        "references": references,
        "missing_cells": [{"experiment": e, "seed": s} for e in experiments for s in seeds if (e, s) not in found],
        "cells": list(cells),
    }


def _decimals(value: float) -> int:
    size = abs(value)
    return 3 if size < 10 else 2 if size < 100 else 1


def format_stat(stat: Mapping[str, Any] | None) -> str:
    """``"0.512 ± 0.034"``; the mean alone for one seed; ``"—"`` when nothing was measured."""
    if not stat or stat.get("mean") is None:
        return "—"
    d = _decimals(stat["mean"])
    if stat.get("ci") is None:
        return f"{stat['mean']:.{d}f}"
    return f"{stat['mean']:.{d}f} ± {stat['ci']:.{d}f}"


def _format_value(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{_decimals(value)}f}"


def _arrow(report: Mapping[str, Any], key: str) -> str:
    higher = report["higher_is_better"].get(key)
    return "" if higher is None else " ↑" if higher else " ↓"


def to_markdown(report: Mapping[str, Any]) -> str:
    experiments, refs = report["experiments"], list(report["references"])
    pct = f"{100 * report['confidence']:g}%"
    header = ["metric", *experiments, *(f"{REFERENCE_LABELS.get(r, r)} (ref.)" for r in refs)]
    lines = [
        "| " + " | ".join(header) + " |",
        "| --- |" + " ---: |" * (len(header) - 1),
    ]
    for key in report["metric_keys"]:
        row = [f"`{key}`{_arrow(report, key)}"]
        row += [format_stat(report["summary"][e].get(key)) for e in experiments]
        row += [_format_value(report["references"][r].get(key)) for r in refs]
        lines.append("| " + " | ".join(row) + " |")
    counts = [str(max((s["n"] for s in report["summary"][e].values()), default=0)) for e in experiments]
    lines.append("| seeds (n) | " + " | ".join(counts + ["—"] * len(refs)) + " |")
    lines.append(
        "| wall time per cell (s) | "
        + " | ".join([format_stat(report["wall_seconds"][e]) for e in experiments] + ["—"] * len(refs))
        + " |"
    )
    text = [
        "# Ablation results",
        "",
        f"Mean ± half-width of the {pct} Student-t confidence interval over seeds {report['seeds']}; "
        "one seed shows the mean alone. ↑ higher is better, ↓ lower is better. Reference rows are trivial "
        "predictions scored on the same clips: *copy input* (the agnostic video) and *garment-mean fill* "
        "(the masked region filled with the garment's mean colour).",
        "",
    ]
    if report.get("eval"):
        text += [f"Evaluation: {report['eval']}.", ""]
    if report.get("command"):
        text += [f"Command: `{report['command']}`", ""]
    text += lines
    if report["missing_cells"]:
        missing = ", ".join(f"{m['experiment']} seed {m['seed']}" for m in report["missing_cells"])
        text += ["", f"Not finished yet (left out): {missing}."]
    return "\n".join(text) + "\n"


def write_chart(report: Mapping[str, Any], path: str | Path, columns: int = 3) -> Path:
    """One panel per metric key: a bar per experiment with its confidence interval, reference rows as
    dashed lines."""
    from matplotlib.figure import Figure

    keys = report["metric_keys"] or ["(no metrics)"]
    experiments = report["experiments"]
    columns = max(1, min(columns, len(keys)))
    rows = math.ceil(len(keys) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.2 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    styles = ["--", ":", "-."]
    for ax, key in zip(axes, keys):
        stats = [report["summary"][e].get(key) or {} for e in experiments]
        means = [s.get("mean") if s.get("mean") is not None else math.nan for s in stats]
        errors = [s.get("ci") if s.get("ci") is not None else 0.0 for s in stats]
        ax.bar(range(len(experiments)), means, yerr=errors, capsize=4, color="tab:blue", alpha=0.8)
        for i, (name, values) in enumerate(report["references"].items()):
            value = values.get(key)
            if value is not None and math.isfinite(value):
                ax.axhline(
                    value,
                    color="0.3",
                    linestyle=styles[i % len(styles)],
                    linewidth=1,
                    label=REFERENCE_LABELS.get(name, name),
                )
        ax.set_title(f"{key}{_arrow(report, key)}", fontsize=10)
        ax.set_xticks(range(len(experiments)), experiments, rotation=30, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    handles, labels = [], []
    for ax in axes:  # one legend for the reference lines, from the first panel that drew each
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize=8)
    fig.suptitle(f"mean ± {100 * report['confidence']:g}% CI over seeds {report['seeds']}", fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
