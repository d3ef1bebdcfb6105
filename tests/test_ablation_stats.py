"""Confidence intervals over seeds: Student-t half-widths against table values."""

from __future__ import annotations

import math

import pytest

from itryon.ablation.stats import summarize, summarize_cells


def test_three_seeds_give_the_t_interval_of_the_tables() -> None:
    s = summarize([1.0, 2.0, 3.0])
    # mean 2, sample std 1, t_{0.975, 2} = 4.302653: half-width 4.302653 / sqrt(3)
    assert s["mean"] == pytest.approx(2.0)
    assert s["std"] == pytest.approx(1.0)
    assert s["ci"] == pytest.approx(2.4841377, abs=1e-6)
    assert s["n"] == 3 and s["missing"] == 0


def test_other_values_and_confidence_levels() -> None:
    s = summarize([0.48, 0.52, 0.53])
    assert s["mean"] == pytest.approx(0.51)
    assert s["std"] == pytest.approx(math.sqrt(0.0007), rel=1e-9)  # deviations -0.03, 0.01, 0.02
    assert s["ci"] == pytest.approx(4.302653 * math.sqrt(0.0007) / math.sqrt(3), rel=1e-6)
    assert summarize([1.0, 2.0, 3.0], confidence=0.99)["ci"] == pytest.approx(9.924843 / math.sqrt(3), rel=1e-6)
    assert summarize([1.0, 3.0])["ci"] == pytest.approx(12.706205 * math.sqrt(2) / math.sqrt(2), rel=1e-6)  # df 1


def test_one_seed_has_no_spread_and_missing_values_are_counted() -> None:
    one = summarize([0.7])
    assert one["mean"] == pytest.approx(0.7) and one["std"] is None and one["ci"] is None
    s = summarize([0.5, None, math.nan, 0.7])
    assert s["n"] == 2 and s["missing"] == 2 and s["mean"] == pytest.approx(0.6)
    assert summarize([])["mean"] is None
    assert summarize([0.4, 0.4, 0.4])["ci"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="confidence"):
        summarize([1.0, 2.0], confidence=95)


def test_cells_are_summarised_per_experiment_and_key() -> None:
    cells = [
        {"experiment": "a", "seed": 0, "metrics": {"isr": 0.2, "isr_contact": 0.1}},
        {"experiment": "a", "seed": 1, "metrics": {"isr": 0.4}},
        {"experiment": "b", "seed": 0, "metrics": {"isr": 0.9}},
    ]
    summary = summarize_cells(cells)
    assert summary["a"]["isr"]["mean"] == pytest.approx(0.3) and summary["a"]["isr"]["n"] == 2
    assert summary["a"]["isr_contact"]["n"] == 1 and summary["a"]["isr_contact"]["missing"] == 1
    assert set(summary["b"]) == {"isr"} and summary["b"]["isr"]["ci"] is None
