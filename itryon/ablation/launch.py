"""Running the pending cells: one after another in this process, or as a job array through submitit.

submitit (``pip install itryon[slurm]``) is imported only when a cluster is asked for. ``cluster`` is any
submitit executor name: ``slurm`` on a cluster, ``local`` (a subprocess per job) or ``debug`` (in this
process) to try the submission path on one machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from itryon.ablation.cell import CellSpec, run_cell


def run_local(cells: Sequence[CellSpec], progress: bool = True) -> list[dict[str, Any]]:
    results = []
    bar = tqdm(cells, desc="ablate", unit="cell", disable=not progress)
    for cell in bar:
        bar.set_postfix_str(f"{cell.experiment} seed {cell.seed}")
        results.append(run_cell(cell))
    return results


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise ImportError(
            "--launcher slurm needs submitit: pip install 'itryon[slurm]' (or pip install submitit)"
        ) from None
    return submitit


def submit(
    cells: Sequence[CellSpec], folder: str | Path, cluster: str = "slurm", parameters: Mapping[str, Any] | None = None
) -> list[Any]:
    """Submit one job per cell (a job array where the cluster has them); returns the submitit jobs."""
    if not cells:
        return []
    submitit = _submitit()
    executor = submitit.AutoExecutor(folder=str(Path(folder) / "%j"), cluster=cluster)
    executor.update_parameters(**{"name": "itryon-ablate", **dict(parameters or {})})
    with executor.batch():
        jobs = [executor.submit(run_cell, cell) for cell in cells]
    return jobs


def wait(jobs: Sequence[Any], cells: Sequence[CellSpec], progress: bool = True) -> list[dict[str, Any]]:
    """Results of the jobs as they finish; a failed job raises naming its cell and its log files."""
    submitit = _submitit()
    results: list[dict[str, Any]] = []
    by_job = {id(j): c for j, c in zip(jobs, cells)}
    for job in tqdm(
        submitit.helpers.as_completed(jobs), total=len(jobs), desc="ablate", unit="cell", disable=not progress
    ):
        cell = by_job[id(job)]
        try:
            results.append(job.result())
        except Exception as exc:
            raise RuntimeError(
                f"cell {cell.experiment} seed {cell.seed} (job {job.job_id}) failed: {exc}; logs: {job.paths.stdout}, {job.paths.stderr}"
            ) from exc
    return results
