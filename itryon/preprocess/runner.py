"""A split: find the clips, skip the finished ones, process the rest (in parallel processes), report failures,
write the manifest. Inputs are only read; outputs go to ``OUT/<split>/<clip>/``, ``OUT/<split>.jsonl`` and
``OUT/<split>.failures.jsonl``."""

from __future__ import annotations

import json
import multiprocessing
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from itryon.data.manifest import read_manifest, write_manifest
from itryon.data.video_io import FRAME_SUFFIXES, VIDEO_SUFFIXES
from itryon.io_utils import write_text

from .agnostic import check_category
from .captions import CaptionFile, FrameLabelCaptioner, QwenVLLabeler
from .estimators import EstimatorSpec
from .pipeline import ClipJob, process_clip

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class PreprocessError(ValueError):
    """The inputs of a split cannot be processed as asked (nothing was written)."""


@dataclass
class CaptionSpec:
    """Where captions come from: a file, a local video-language model folder, or neither (empty captions)."""

    file: str | None = None
    model: str | None = None
    every: int = 4

    def build(self) -> Any | None:
        if self.file and self.model:
            raise PreprocessError("give a captions file or a captioning model, not both")
        if self.file:
            return CaptionFile(self.file)
        if self.model:
            return FrameLabelCaptioner(QwenVLLabeler(self.model), every=self.every)
        return None


@dataclass
class SplitResult:
    manifest: Path | None
    processed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished in an earlier run
    failed: list[dict[str, str]] = field(default_factory=list)


def _media(folder: Path, suffixes: tuple[str, ...], frame_folders: bool) -> dict[str, Path]:
    if not folder.is_dir():
        raise PreprocessError(f"{folder}: no such folder")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if (p.is_file() and p.suffix.lower() in suffixes) or (
            frame_folders and p.is_dir() and any(f.suffix.lower() in FRAME_SUFFIXES for f in p.iterdir())
        ):
            stem = p.stem if p.is_file() else p.name
            if stem in out:
                raise PreprocessError(f"{folder}: {out[stem].name} and {p.name} both name clip {stem!r}")
            out[stem] = p
    return out


def read_pairs(path: Path) -> dict[str, tuple[str, str | None]]:
    """``clip garment [category]`` per line (names or stems; ``#`` comments)."""
    if not path.is_file():
        raise PreprocessError(f"pairs file {path} does not exist")
    pairs = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) not in (2, 3):
            raise PreprocessError(f"{path}:{number}: expected 'clip garment [category]', got {line!r}")
        category = check_category(parts[2]) if len(parts) == 3 else None
        pairs[Path(parts[0]).stem] = (Path(parts[1]).stem, category)
    return pairs


def find_jobs(
    videos: Path,
    garments: Path,
    out: Path,
    split: str,
    pairs: Path | None = None,
    category: str = "upper",
    **job_args: Any,
) -> list[ClipJob]:
    """One job per video of ``videos`` (files or frame folders); garments pair by the pairs file, by equal names, or
    (a folder of one garment) all with that one."""
    check_category(category)
    clips = _media(videos, VIDEO_SUFFIXES, frame_folders=True)
    images = _media(garments, IMAGE_SUFFIXES, frame_folders=False)
    if not clips:
        raise PreprocessError(f"{videos}: holds no videos ({'/'.join(VIDEO_SUFFIXES)} files or folders of frames)")
    if not images:
        raise PreprocessError(f"{garments}: holds no garment images ({'/'.join(IMAGE_SUFFIXES)})")
    pairing = read_pairs(pairs) if pairs else None
    jobs = []
    for clip in sorted(pairing) if pairing is not None else sorted(clips):
        if clip not in clips:
            raise PreprocessError(f"{pairs}: names clip {clip!r}, which is not in {videos}")
        garment, cat = (
            pairing[clip]
            if pairing is not None
            else (clip if clip in images or len(images) != 1 else next(iter(images)), None)
        )
        if garment not in images:
            raise PreprocessError(
                f"clip {clip!r}: no garment image named {garment!r} in {garments} (pair them with --pairs)"
            )
        jobs.append(ClipJob(clip, clips[clip], images[garment], cat or category, out, f"{split}/{clip}", **job_args))
    check_no_overwrite(jobs, out / f"{split}.jsonl")
    return jobs


def check_no_overwrite(jobs: Sequence[ClipJob], manifest: Path) -> None:
    """Raise unless every output lies apart from every input (the inputs are never written)."""
    inputs = {p.resolve() for job in jobs for p in (job.video, job.garment)}
    for job in jobs:
        folder = (job.out / job.folder).resolve()
        for p in inputs:
            if p == folder or folder in p.parents:
                raise PreprocessError(f"output folder {folder} would hold the input {p}; choose another --out")
    for target in (manifest, manifest.with_name(manifest.stem + ".failures.jsonl")):
        if target.resolve() in inputs:
            raise PreprocessError(f"{target} is an input; choose another --out")


_WORKER: dict[str, Any] = {}


def _init_worker(spec: EstimatorSpec, captions: CaptionSpec) -> None:
    _WORKER["estimators"] = spec.build()
    _WORKER["captioner"] = captions.build()


def _run(job: ClipJob) -> tuple[str, dict[str, Any] | None, str | None]:
    try:
        return job.clip, process_clip(job, _WORKER["estimators"], _WORKER["captioner"]), None
    except Exception as exc:  # any failure of one clip is reported and the others go on
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return job.clip, None, f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"


def preprocess_split(
    jobs: Sequence[ClipJob],
    manifest: Path,
    spec: EstimatorSpec | None = None,
    captions: CaptionSpec | None = None,
    workers: int = 1,
    progress: bool = True,
    redo: bool = False,
) -> SplitResult:
    """Process ``jobs`` (finished clips are skipped unless ``redo``) and write ``manifest`` from every finished clip."""
    spec, captions = spec or EstimatorSpec(), captions or CaptionSpec()
    result = SplitResult(manifest=None)
    todo = []
    for job in jobs:
        (todo.append(job) if redo or not job.done_path.is_file() else result.skipped.append(job.clip))
    bar = tqdm(total=len(todo), desc=f"preprocess {manifest.stem}", unit="clip", disable=not progress)
    if todo and workers <= 1:
        _init_worker(spec, captions)
        outcomes = (_run(job) for job in todo)
        _collect(outcomes, result, bar)
    elif todo:
        context = multiprocessing.get_context("spawn")  # estimators hold threads and native state: never fork them
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(spec, captions)
        ) as pool:
            _collect((f.result() for f in as_completed([pool.submit(_run, job) for job in todo])), result, bar)
    bar.close()
    failures = manifest.with_name(manifest.stem + ".failures.jsonl")
    if result.failed:
        write_text(failures, "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in result.failed))
    elif failures.exists():
        failures.unlink()
    records = [json.loads(job.done_path.read_text()) for job in jobs if job.done_path.is_file()]
    if records:
        write_manifest(manifest, records)
        read_manifest(manifest)  # what was written must read back
        result.manifest = manifest
    return result


def _collect(outcomes, result: SplitResult, bar) -> None:
    for clip, _record, error in outcomes:
        if error is None:
            result.processed.append(clip)
        else:
            result.failed.append({"clip": clip, "error": error})
            bar.write(f"failed {clip}: {error}")
        bar.update(1)
