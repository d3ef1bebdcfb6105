"""A LightningDataModule serving any contract-following datasets, robust to a bad sample, resumable mid-epoch."""

from __future__ import annotations

import functools
import json
import logging
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from torch.utils.data import DataLoader, Dataset, get_worker_info
from torchdata.stateful_dataloader import StatefulDataLoader

from itryon.data.contract import SkippedSample, collate, validate_sample
from itryon.io_utils import append_line

log = logging.getLogger(__name__)
# torchdata 0.11 calls a torch function that recent torch deprecated, once per epoch; nothing to act on
warnings.filterwarnings("ignore", message=r".*'set_vital' is deprecated.*", category=UserWarning)
SKIPPED_FILE = "skipped.jsonl"  # one JSON line per skipped sample, in the run folder (or the inference output)


class SkipBadSamples(Dataset):
    """Wraps a dataset so that a sample that fails to load or breaks the contract is skipped and reported.

    Every skip is logged, kept in ``skipped`` and, with ``report_path``, appended to that JSON-lines file
    (``{"split", "index", "clip", "error", "replaced_by"}``; worker processes append too). Then:

    * ``replace=True`` (training): the next loadable index (cyclically) is served in its place, so that batches
      keep their size; the line's ``replaced_by`` names it.
    * ``replace=False`` (validation, test, inference): a :class:`~itryon.data.contract.SkippedSample` marker is
      returned and :func:`~itryon.data.contract.collate` leaves it out of its batch, so that no clip is
      counted twice (a batch of only bad samples becomes ``None``).

    After ``max_consecutive`` failures in a row the error is raised, since then the data, not one sample, is
    broken. In a DataLoader worker, ``state_dict`` holds the worker's RNG states, which a stateful DataLoader
    saves in the checkpoint and puts back on resume (random transforms then continue as if never stopped).
    """

    def __init__(
        self,
        dataset: Dataset,
        validate: bool = True,
        max_consecutive: int = 8,
        replace: bool = True,
        name: str = "",
        report_path: str | Path | None = None,
    ) -> None:
        self.dataset = dataset
        self.validate = validate
        self.max_consecutive = max_consecutive
        self.replace = replace
        self.name = name
        self.report_path = Path(report_path) if report_path is not None else None
        self.skipped: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def clip_id(self, index: int) -> str:
        own = getattr(self.dataset, "clip_id", None)
        if callable(own):
            try:
                return str(own(index))
            except Exception:  # the id itself is unreadable: fall back to the index
                pass
        return f"#{index}"

    def _load(self, index: int) -> Mapping[str, Any]:
        sample = self.dataset[index]
        if self.validate:
            validate_sample(sample)
        return sample

    def __getitem__(self, index: int) -> Mapping[str, Any]:
        errors = []
        replacement = getattr(self.dataset, "replacement", None)  # a bucketed dataset replaces within the clip's bucket
        for attempt in range(self.max_consecutive):
            i = replacement(index, attempt) if callable(replacement) else (index + attempt) % len(self)
            try:
                sample = self._load(i)
            except Exception as exc:  # any loader failure of one sample is reported and skipped
                message = f"{type(exc).__name__}: {exc}"
                if not self.replace:
                    self._report(i, message, None)
                    return SkippedSample(i, self.clip_id(i), message)
                errors.append((i, message))
                continue
            for j, message in errors:
                self._report(j, message, i)
            return sample
        for j, message in errors:
            self._report(j, message, None)
        lines = "\n".join(f"  index {j} ({self.clip_id(j)}): {m}" for j, m in errors)
        raise RuntimeError(
            f"{self.max_consecutive} consecutive bad samples of {self.name or type(self.dataset).__name__} from index {index}:\n{lines}"
        )

    def _report(self, index: int, message: str, replaced_by: int | None) -> None:
        self.skipped.append((index, message))
        clip = self.clip_id(index)
        instead = (
            f"; serving index {replaced_by} in its place" if replaced_by is not None else "; left out of its batch"
        )
        log.warning(
            "skipping bad sample %d (%s) of %s: %s%s",
            index,
            clip,
            self.name or type(self.dataset).__name__,
            message,
            instead,
        )
        if self.report_path is not None:
            record = {"split": self.name, "index": index, "clip": clip, "error": message, "replaced_by": replaced_by}
            append_line(self.report_path, json.dumps(record, ensure_ascii=False))

    # per-worker RNG states, for stateful DataLoaders (main-process loading uses the global RNG, saved by the trainer)
    def state_dict(self) -> dict[str, Any]:
        if get_worker_info() is None:
            return {}
        return rng_states(include_cuda=False)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and get_worker_info() is not None:
            set_rng_states(state)


def rng_states(include_cuda: bool = True) -> dict[str, Any]:
    """Lightning's python/numpy/torch RNG states, numpy's key array as a tensor (a weights-only load accepts it)."""
    states = _collect_rng_states(include_cuda=include_cuda)
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    states["numpy"] = [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)]
    return states


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Put back what :func:`rng_states` returned (also after a round trip through a checkpoint)."""
    states = dict(states)
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    states["numpy"] = (kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss)
    version, internal, cached = states["python"]
    states["python"] = (version, tuple(internal), cached)
    _set_rng_states(states)


def count_skipped(path: str | Path) -> dict[str, Any]:
    """``{"clips": distinct (split, clip) pairs skipped, "by_split": {split: clips}, "events": lines}`` of a
    ``skipped.jsonl`` (zeros if absent): a clip skipped in every epoch counts once per split."""
    path = Path(path)
    if not path.is_file():
        return {"clips": 0, "by_split": {}, "events": 0}
    seen: set[tuple[Any, Any]] = set()
    events = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill
            continue
        events += 1
        seen.add((record.get("split"), record.get("clip")))
    by_split: dict[str, int] = {}
    for split, _ in seen:
        by_split[str(split)] = by_split.get(str(split), 0) + 1
    return {"clips": len(seen), "by_split": dict(sorted(by_split.items())), "events": events}


class TryOnDataModule(L.LightningDataModule):
    """Serves train/val/test datasets that yield the batch contract (``itryon.data.contract``).

    The training loader is torchdata's ``StatefulDataLoader``: Lightning saves its position in the epoch (and
    the sampler's and workers' random states) in every checkpoint, so a resumed run continues with the very
    batches the stopped one would have seen. Validation and test loaders draw their seeds from their own
    generator, never from the global RNG that training's random draws come from.

    ``cache`` decides whether the training set's latent cache (``itryon cache``; by default in
    ``<manifest folder>/cache/<manifest name>``, or ``cache_dir``) replaces the model's VAE and text-encoder calls:
    ``auto`` uses it when present, ``require`` insists, ``rebuild`` builds it when absent or stale, ``off`` ignores
    it. A cache built by other encoders or for another manifest is refused, naming what changed.
    """

    def __init__(
        self,
        train: Dataset | None = None,
        val: Dataset | None = None,
        test: Dataset | None = None,
        batch_size: int = 2,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        skip_bad_samples: bool = True,
        pin_memory: bool = False,
        cache: str = "auto",
        cache_dir: str | None = None,
        buckets: Any = None,
        random_crops: bool = True,
    ) -> None:
        super().__init__()
        if train is None and val is None and test is None:
            raise ValueError("TryOnDataModule needs at least one of train, val, test")
        for name, dataset in (("train", train), ("val", val), ("test", test)):
            if dataset is not None and hasattr(dataset, "__len__") and len(dataset) == 0:  # type: ignore[arg-type]
                raise ValueError(f"data.{name} ({type(dataset).__name__}) holds no samples")

        def wrap(d: Dataset | None, name: str) -> Dataset | None:
            if d is not None and buckets is not None:
                from itryon.data.buckets import BucketedClips

                d = BucketedClips(d, buckets, random_crop=random_crops and name == "train")
            if d is None or not skip_bad_samples:
                return d
            return SkipBadSamples(d, replace=name == "train", name=name)

        self.train_set, self.val_set, self.test_set = wrap(train, "train"), wrap(val, "val"), wrap(test, "test")
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.cache, self.cache_dir = cache, cache_dir
        self.latent_cache = None

    def setup(self, stage: str) -> None:
        """Attach the training set's latent cache to the model's encoders (see the class docstring)."""
        if self.cache == "off" or self.train_set is None or self.trainer is None or self.latent_cache is not None:
            return
        from itryon.cache.build import use_cache

        dataset = self.train_set.dataset if isinstance(self.train_set, SkipBadSamples) else self.train_set
        trainer = self.trainer
        if self.cache == "rebuild" and trainer.world_size > 1:  # one process builds, the others wait and read it
            if trainer.global_rank == 0:
                use_cache(trainer.lightning_module, dataset, self.cache_dir, "rebuild")
            trainer.strategy.barrier("latent-cache")
        self.latent_cache = use_cache(
            trainer.lightning_module, dataset, self.cache_dir, self.cache, rebuild_allowed=trainer.global_rank == 0
        )

    def datasets(self) -> dict[str, Dataset]:
        return {
            n: d
            for n, d in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set))
            if d is not None
        }

    def report_skips_to(self, path: str | Path) -> None:
        """Append every skipped sample to ``path`` (the run's ``skipped.jsonl``); call before the loaders are built."""
        for dataset in self.datasets().values():
            if isinstance(dataset, SkipBadSamples):
                dataset.report_path = Path(path)

    def _loader(self, dataset: Dataset | None, name: str, batch_size: int, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise ValueError(f"TryOnDataModule has no '{name}' dataset configured (data.{name})")
        inner = dataset.dataset if isinstance(dataset, SkipBadSamples) else dataset
        if hasattr(inner, "shapes") and hasattr(inner, "replacement"):  # bucketed: batches of one shape
            from itryon.data.buckets import BucketBatchSampler

            sampler = BucketBatchSampler(
                inner.shapes, batch_size, shuffle=shuffle, seed=torch.initial_seed() if shuffle else 0
            )
            common = dict(
                num_workers=self.num_workers,
                collate_fn=collate,
                pin_memory=self.pin_memory,
                persistent_workers=self.num_workers > 0,
                worker_init_fn=self._worker_init_fn(),
            )
            if name == "train":
                return StatefulDataLoader(dataset, batch_sampler=sampler, **common)
            return DataLoader(dataset, batch_sampler=sampler, generator=torch.Generator().manual_seed(0), **common)
        args: dict[str, Any] = dict(
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=self.pin_memory,
            drop_last=shuffle and len(dataset) >= batch_size,  # type: ignore[arg-type]
            persistent_workers=self.num_workers > 0,
            worker_init_fn=self._worker_init_fn(),
        )
        if name == "train":
            return StatefulDataLoader(dataset, **args)
        return DataLoader(dataset, generator=torch.Generator().manual_seed(0), **args)

    def _worker_init_fn(self) -> Callable[[int], None] | None:
        """Lightning's worker seeding (``seed_everything(workers=True)``) by the rank of the data a process serves.

        Lightning seeds workers by global rank; the ranks of a context-parallel group serve the same batches, so
        their workers (random crops, flips) must draw alike: the data-parallel rank of the strategy's sampler.
        """
        if self.num_workers == 0 or os.environ.get("PL_SEED_WORKERS", "0") != "1":
            return None
        from lightning.fabric.utilities.seed import pl_worker_init_function

        trainer = getattr(self, "trainer", None)
        rank = 0 if trainer is None else trainer.global_rank
        if trainer is not None:
            rank = int((getattr(trainer.strategy, "distributed_sampler_kwargs", None) or {}).get("rank", rank))
        return functools.partial(pl_worker_init_function, rank=rank)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, "train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, "val", self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, "test", self.val_batch_size, shuffle=False)
