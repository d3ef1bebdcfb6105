"""A LightningDataModule serving any contract-following datasets, robust to a bad sample."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from itryon.data.contract import collate, validate_sample

log = logging.getLogger(__name__)


class SkipBadSamples(Dataset):
    """Wraps a dataset so that a sample that fails to load or breaks the contract is skipped and reported.

    The next index (cyclically) is served instead; after ``max_consecutive`` failures in a row the error is
    raised, since then the data, not one sample, is broken. Skipped ids are kept in ``skipped``.
    """

    def __init__(self, dataset: Dataset, validate: bool = True, max_consecutive: int = 8) -> None:
        self.dataset = dataset
        self.validate = validate
        self.max_consecutive = max_consecutive
        self.skipped: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Mapping[str, Any]:
        errors = []
        for attempt in range(self.max_consecutive):
            i = (index + attempt) % len(self)
            try:
                sample = self.dataset[i]
                if self.validate:
                    validate_sample(sample)
                return sample
            except Exception as exc:  # any loader failure of one sample is reported and skipped
                message = f"{type(exc).__name__}: {exc}"
                self.skipped.append((i, message))
                errors.append(f"  index {i}: {message}")
                log.warning("skipping bad sample %d of %s: %s", i, type(self.dataset).__name__, message)
        raise RuntimeError(f"{self.max_consecutive} consecutive bad samples from index {index}:\n" + "\n".join(errors))


class TryOnDataModule(L.LightningDataModule):
    """Serves train/val/test datasets that yield the batch contract (``itryon.data.contract``)."""

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
    ) -> None:
        super().__init__()
        if train is None and val is None and test is None:
            raise ValueError("TryOnDataModule needs at least one of train, val, test")
        wrap = (lambda d: SkipBadSamples(d) if d is not None else None) if skip_bad_samples else (lambda d: d)
        self.train_set, self.val_set, self.test_set = wrap(train), wrap(val), wrap(test)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory

    def _loader(self, dataset: Dataset | None, name: str, batch_size: int, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise ValueError(f"TryOnDataModule has no '{name}' dataset configured (data.{name})")
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=self.pin_memory,
            drop_last=shuffle and len(dataset) >= batch_size,  # type: ignore[arg-type]
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, "train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, "val", self.val_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, "test", self.val_batch_size, shuffle=False)
