"""Mean, spread and a Student-t confidence interval of one metric over seeds."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats


def summarize(values: Iterable[float], confidence: float = 0.95) -> dict[str, Any]:
    """``mean``, ``std`` (sample, ddof=1), ``ci`` (half-width of the t-interval) and ``n`` of ``values``.

    Non-finite values (a metric with nothing to measure) are left out and counted in ``missing``. With one
    value ``std`` and ``ci`` are None: one seed says nothing about the spread.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    given = [math.nan if v is None else float(v) for v in values]  # None: null in a results file
    finite = np.array([v for v in given if math.isfinite(v)], dtype=np.float64)
    n = int(finite.size)
    out: dict[str, Any] = {
        "mean": None,
        "std": None,
        "ci": None,
        "n": n,
        "missing": len(given) - n,
        "confidence": confidence,
    }
    if n == 0:
        return out
    out["mean"] = float(finite.mean())
    if n > 1:
        std = float(finite.std(ddof=1))
        out["std"] = std
        # half-width of the two-sided interval mean ± t_{(1+c)/2, n-1} · s / sqrt(n)
        out["ci"] = float(stats.t.ppf(0.5 + confidence / 2.0, df=n - 1) * std / math.sqrt(n))
    return out


def summarize_cells(
    cells: Sequence[Mapping[str, Any]], confidence: float = 0.95
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per experiment, per metric key: :func:`summarize` over that experiment's cells (``{"experiment",
    "metrics"}`` records). Every metric key any cell of an experiment reports gets a summary."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for cell in cells:
        grouped.setdefault(str(cell["experiment"]), []).append(cell)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for experiment, records in grouped.items():
        keys: list[str] = []
        for record in records:
            keys += [k for k in record["metrics"] if k not in keys]
        summary[experiment] = {
            key: summarize((r["metrics"].get(key, math.nan) for r in records), confidence) for key in keys
        }
    return summary
