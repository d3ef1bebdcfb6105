"""benchmarks/train_step.py runs on a CPU with its scaled-down shapes and writes a row per case."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_train_step_benchmark_runs_scaled_on_cpu(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("train_step", ROOT / "benchmarks" / "train_step.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "train_step.json"
    assert bench.main(["--device", "cpu", "--repeats", "1", "--warmup", "0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["scaled"] and result["dense_peak_flops"] is None and result["measured_gemm_flops"] > 0
    cases = {(r["config"], r["backbone"], r["checkpointing"]) for r in result["rows"]}
    assert cases == {
        ("wan2.1_1.3b", "itryon", False), ("wan2.1_1.3b", "itryon", True),
        ("wan2.1_vace_1.3b", "itryon", False), ("wan2.1_vace_1.3b", "itryon", True),
        ("wan2.1_vace_1.3b", "diffusers", False), ("wan2.1_vace_1.3b", "diffusers", True),
    }  # fmt: skip
    for row in result["rows"]:
        assert row["error"] is None and math.isfinite(row["step_s"]) and row["step_s"] > 0
        assert row["tokens"] == 3 * 4 * 4 and 0 < row["mfu_measured_gemm"] < 1
        estimate = row["estimate_gb"]
        assert math.isclose(estimate["total_gb"], estimate["states_gb"] + estimate["activations_gb"])
    vace = [r for r in result["rows"] if r["config"] == "wan2.1_vace_1.3b" and r["backbone"] == "itryon"]
    assert all("step_vs_diffusers" in r for r in vace)
    assert "MFU gemm" in capsys.readouterr().out
