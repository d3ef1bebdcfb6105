"""The ablation table from given cell results: Markdown rows, per-family keys, missing cells, the chart."""

from __future__ import annotations

import pytest
from PIL import Image

from itryon.ablation.report import build_report, format_stat, to_markdown, write_chart


def _cells() -> list[dict]:
    values = {("full", 0): 0.60, ("full", 1): 0.62, ("full", 2): 0.64, ("base", 0): 0.40, ("base", 1): 0.50}
    return [
        {
            "experiment": e,
            "seed": s,
            "metrics": {"isr": v, "isr_contact": v - 0.1, "lpips": 0.2},
            "wall_seconds": 10.0 + s,
        }
        for (e, s), v in values.items()
    ]


@pytest.fixture()
def report() -> dict:
    refs = {
        "copy_input": {"isr": 0.05, "isr_contact": 0.0, "lpips": 0.3},
        "garment_mean_fill": {"isr": 0.01, "isr_contact": None, "lpips": 0.25},
    }
    return build_report(
        _cells(),
        ["full", "base"],
        [0, 1, 2],
        refs,
        higher_is_better={"isr": True, "lpips": False},
        command="itryon ablate ...",
    )


def test_summary_and_missing_cells(report: dict) -> None:
    full = report["summary"]["full"]["isr"]
    assert full["mean"] == pytest.approx(0.62) and full["n"] == 3
    assert full["ci"] == pytest.approx(4.302653 * 0.02 / 3**0.5, rel=1e-6)  # std of 0.60, 0.62, 0.64 is 0.02
    assert report["missing_cells"] == [{"experiment": "base", "seed": 2}]
    assert report["metric_keys"] == ["isr", "isr_contact", "lpips"]
    assert report["wall_seconds"]["full"]["mean"] == pytest.approx(11.0)


def test_markdown_has_a_row_per_key_with_interval_and_references(report: dict) -> None:
    md = to_markdown(report)
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| metric"))
    assert header == "| metric | full | base | copy input (ref.) | garment-mean fill (ref.) |"
    assert "| `isr` ↑ | 0.620 ± 0.050 | 0.450 ± 0.635 | 0.050 | 0.010 |" in lines
    assert (
        "| `isr_contact` | 0.520 ± 0.050 | 0.350 ± 0.635 | 0.000 | — |" in lines
    )  # a per-family key, no direction known
    assert "| `lpips` ↓ | 0.200 ± 0.000 | 0.200 ± 0.000 | 0.300 | 0.250 |" in lines
    assert "| seeds (n) | 3 | 2 | — | — |" in lines
    assert "Not finished yet (left out): base seed 2." in md
    assert "Command: `itryon ablate ...`" in md


def test_format_stat() -> None:
    assert format_stat({"mean": 21.456, "ci": 0.5}) == "21.46 ± 0.50"
    assert format_stat({"mean": 0.5, "ci": None}) == "0.500"
    assert format_stat({"mean": None}) == "—" and format_stat(None) == "—"


def test_chart_has_a_panel_per_key(report: dict, tmp_path) -> None:
    one = write_chart(report, tmp_path / "one.png", columns=3)
    report["metric_keys"] = report["metric_keys"][:1]
    small = write_chart(report, tmp_path / "small.png", columns=3)
    w1, h1 = Image.open(one).size
    w2, h2 = Image.open(small).size
    assert w1 > 2.5 * w2 and h1 == pytest.approx(h2, rel=0.05)  # three panels in a row vs one
