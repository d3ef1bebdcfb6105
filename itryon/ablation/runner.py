"""``itryon ablate`` as a function: plan the cells, run the pending ones, score the reference rows on the same
clips and write ``results.json``, ``results.md`` and ``results.png`` into the output folder."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from itryon.ablation.cell import CellSpec, EvalSettings, check_config, read_json, write_json_atomic
from itryon.ablation.evaluation import build_eval_dataset, finite_or_none, higher_is_better, score
from itryon.ablation.launch import run_local, submit, wait
from itryon.ablation.plan import EXPERIMENT_DIR, SETTINGS, check_settings, plan_cells
from itryon.ablation.report import build_report, to_markdown, write_chart
from itryon.metrics.references import REFERENCES

RESULTS_JSON, RESULTS_MD, RESULTS_PNG = "results.json", "results.md", "results.png"
JOBS = "jobs"


def reference_results(out: Path, node: Mapping[str, Any], ev: EvalSettings) -> dict[str, dict[str, float | None]]:
    """The trivial predictions scored on the clips of ``node``, cached in ``<out>/references/``."""
    key = json.dumps({"data": node, "metrics": list(ev.metrics)}, sort_keys=True)
    path = out / "references" / f"{hashlib.sha1(key.encode()).hexdigest()[:12]}.json"
    if path.is_file():
        return read_json(path)["results"]
    predictors = {name: (lambda batch, i, f=f: f(batch)) for name, f in REFERENCES.items()}
    results = score(predictors, build_eval_dataset(node), ev.metrics, ev.weights_dir, ev.batch_size, ev.device)
    results = {name: finite_or_none(values) for name, values in results.items()}
    write_json_atomic(path, {"eval_data": node, "metrics": list(ev.metrics), "results": results})
    return results


def shared_eval_data(results: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The clips every cell was scored on; cells scored on different clips cannot share a table."""
    nodes: dict[str, list[str]] = {}
    for r in results:
        nodes.setdefault(json.dumps(r["eval_data"], sort_keys=True), []).append(f"{r['experiment']} seed {r['seed']}")
    if len(nodes) > 1:
        groups = "; ".join(f"{json.loads(k)} for {v}" for k, v in nodes.items())
        raise ValueError(f"the cells were scored on different clips, so they cannot share a table: {groups}")
    return json.loads(next(iter(nodes))) if nodes else None


def describe_eval(node: Mapping[str, Any], num_clips: int | None) -> str:
    target = str(node.get("_target_", "?")).rsplit(".", 1)[-1]
    where = f"split `{node['split']}`, seed {node.get('seed')}" if "split" in node else f"`{node.get('manifest')}`"
    return f"{num_clips} clips, {target} ({where})"


def run_ablation(
    out: str | Path,
    experiments: Sequence[str],
    seeds: Sequence[int],
    overrides: Sequence[str] = (),
    evaluation: EvalSettings = EvalSettings(),
    experiment_dir: str | Path = EXPERIMENT_DIR,
    launcher: str = "local",
    cluster_parameters: Mapping[str, Any] | None = None,
    wait_for_jobs: bool = True,
    report_only: bool = False,
    confidence: float = 0.95,
    progress: bool = True,
    command: str = "",
) -> dict[str, Any] | None:
    """Run what is missing and write the table; returns the results record (None while jobs still run).

    ``launcher`` is ``local`` (cells one after another in this process), ``slurm`` (a job per cell through
    submitit), or ``submitit-<executor>`` for any other submitit executor (``submitit-debug`` runs the jobs
    in this process, ``submitit-local`` as subprocesses, all at once).
    """
    out = Path(out)
    cells = plan_cells(out, experiments, seeds, overrides, evaluation, experiment_dir)
    pending = [c for c in cells if not c.done()]
    if not report_only:
        for cell in pending:  # a wrong key fails here, before hours of training and before settings are kept
            check_config(cell)
    check_settings(out, overrides, evaluation)
    if pending and not report_only:
        if launcher == "local":
            run_local(pending, progress)
        else:
            jobs = submit(pending, out / JOBS, launcher.removeprefix("submitit-"), cluster_parameters)
            record_jobs(out, pending, jobs)
            if not wait_for_jobs:
                return None
            wait(jobs, pending, progress)
    return write_results(
        out,
        cells,
        evaluation,
        confidence,
        command,
        experiments=list(dict.fromkeys(c.experiment for c in cells)),
        seeds=seeds,
    )


def record_jobs(out: Path, cells: Sequence[CellSpec], jobs: Sequence[Any]) -> Path:
    path = out / JOBS / "submitted.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for cell, job in zip(cells, jobs):
            f.write(json.dumps({"experiment": cell.experiment, "seed": cell.seed, "job_id": str(job.job_id)}) + "\n")
    return path


def write_results(
    out: Path,
    cells: Sequence[CellSpec],
    ev: EvalSettings,
    confidence: float,
    command: str,
    experiments: Sequence[str],
    seeds: Sequence[int],
) -> dict[str, Any]:
    results = [read_json(c.result_path) for c in cells if c.done()]
    node = shared_eval_data(results)
    references = reference_results(out, node, ev) if node is not None else {}
    description = describe_eval(node, results[0].get("num_clips")) if node is not None else ""
    report = build_report(
        results,
        experiments,
        seeds,
        references,
        confidence,
        higher_is_better(ev.metrics, ev.metrics),
        command=command,
        eval=description,
        settings=read_json(out / SETTINGS),
    )
    write_json_atomic(out / RESULTS_JSON, report)
    (out / RESULTS_MD).write_text(to_markdown(report))
    write_chart(report, out / RESULTS_PNG)
    return report
