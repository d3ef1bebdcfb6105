"""Shape buckets: clips of any length, size and aspect ratio served at a few training shapes, batched by shape.

:class:`ShapeBuckets` lists the shapes (resolutions x frame counts, ``1 + c k`` frames for a VAE of temporal
compression ``c``) and gives each clip the resolution nearest its aspect ratio and the longest frame count it
holds. :class:`BucketedClips` serves each clip at its shape (scaled to cover the resolution and centre-cropped;
a temporal crop that remaps the action spans to the kept frames). :class:`BucketBatchSampler` forms batches of
one shape and serves every clip once per epoch, with its position saved in the data loader's state so that a
resumed run continues with the same batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Sampler

from itryon.data.transforms import ResizeCrop, TemporalCrop
from itryon.data.video_io import video_info

Shape = tuple[int, int, int]  # (H, W, T)


class ShapeBuckets:
    """Training shapes: every ``resolutions`` ``[H, W]`` with every ``frames`` count (each ``1 + c k``)."""

    def __init__(
        self,
        resolutions: Sequence[Sequence[int]],
        frames: Sequence[int],
        temporal_compression: int = 4,
        garment_size: Sequence[int] | None = None,
    ) -> None:
        if not resolutions or not frames:
            raise ValueError("ShapeBuckets needs at least one resolution [H, W] and one frame count")
        self.resolutions = [(int(h), int(w)) for h, w in resolutions]
        if any(h < 1 or w < 1 for h, w in self.resolutions):
            raise ValueError(f"resolutions must be positive [H, W] pairs, got {self.resolutions}")
        bad = [t for t in frames if t < 1 or (temporal_compression > 1 and (t - 1) % temporal_compression)]
        if bad:
            raise ValueError(
                f"frame counts {bad} are not 1 + {temporal_compression}k (what a causal VAE of temporal compression {temporal_compression} takes)"
            )
        self.frames = sorted(int(t) for t in frames)
        self.garment_size = (int(garment_size[0]), int(garment_size[1])) if garment_size is not None else None

    def assign(self, height: int, width: int, num_frames: int) -> Shape | None:
        """The shape of a clip: the resolution nearest its aspect ratio (then the largest), the most frames it has;
        None when it is shorter than every frame count."""
        fits = [t for t in self.frames if t <= num_frames]
        if not fits:
            return None
        aspect = math.log(width / height)
        h, w = min(self.resolutions, key=lambda r: (round(abs(math.log(r[1] / r[0]) - aspect), 6), -r[0] * r[1]))
        return h, w, fits[-1]


class BucketedClips(Dataset):
    """``dataset`` (an :class:`~itryon.data.manifest.InteractiveManifestDataset`) with each clip at its bucket's shape.

    Clips shorter than every frame count are left out and listed in ``rejected``. ``random_crop`` draws the
    temporal crop's start (training); otherwise clips start at frame 0.
    """

    def __init__(self, dataset: Dataset, buckets: ShapeBuckets, random_crop: bool = True) -> None:
        self.dataset, self.buckets = dataset, buckets
        if hasattr(dataset, "one_size"):
            dataset.one_size = False  # the buckets set the sizes
        self.indices: list[int] = []
        self.shapes: list[Shape] = []
        self.rejected: list[dict[str, Any]] = []
        for i, record in enumerate(dataset.records):
            h, w = record.get("height"), record.get("width")
            if h is None or w is None:
                info = video_info(dataset.root / record["video"])
                h, w = info["height"], info["width"]
            shape = buckets.assign(int(h), int(w), int(record["num_frames"]))
            if shape is None:
                self.rejected.append(
                    {
                        "clip": str(record["id"]),
                        "error": f"{record['num_frames']} frames, fewer than the shortest bucket's {buckets.frames[0]}",
                    }
                )
                continue
            self.indices.append(i)
            self.shapes.append(shape)
        if not self.indices:
            raise ValueError(
                f"no clip fits a bucket (the first: {self.rejected[0]['error']})"
                if self.rejected
                else "the dataset holds no clips"
            )
        self.random_crop = random_crop
        self._by_shape: dict[Shape, list[int]] = {}
        for j, shape in enumerate(self.shapes):
            self._by_shape.setdefault(shape, []).append(j)

    def __len__(self) -> int:
        return len(self.indices)

    def clip_id(self, index: int) -> str:
        return str(self.dataset.records[self.indices[index]]["id"])

    def replacement(self, index: int, attempt: int) -> int:
        """The ``attempt``-th clip after ``index`` in its own bucket (what replaces a bad clip keeps the batch one shape)."""
        same = self._by_shape[self.shapes[index]]
        return same[(same.index(index) + attempt) % len(same)]

    def __getitem__(self, index: int) -> dict[str, Any]:
        h, w, t = self.shapes[index]
        sample = self.dataset[self.indices[index]]
        garment = self.buckets.garment_size
        sample = ResizeCrop(h, w, *(garment or (None, None)))(sample)
        return TemporalCrop(t, random=self.random_crop)(sample)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of ``batch_size`` indices of one shape (``shapes[i]`` for index ``i``); each index once per epoch.

    Per epoch ``e`` the order comes from ``seed`` and ``e`` only: clips are shuffled inside each bucket, cut into
    batches (a bucket's last batch may be smaller unless ``drop_last``), and the batches shuffled. The iterator's
    ``state_dict`` holds the epoch and how many batches it served, which a stateful data loader saves and restores.
    """

    def __init__(
        self, shapes: Sequence[Any], batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = False
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.shapes = [tuple(s) for s in shapes]
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, int(seed), drop_last
        self.epoch = 0

    def batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        groups: dict[Any, list[int]] = {}
        for i, shape in enumerate(self.shapes):
            groups.setdefault(shape, []).append(i)
        out = []
        for shape in sorted(groups):
            members = groups[shape]
            if self.shuffle:
                members = [members[k] for k in rng.permutation(len(members))]
            for start in range(0, len(members), self.batch_size):
                batch = members[start : start + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    out.append(batch)
        if self.shuffle:
            out = [out[k] for k in rng.permutation(len(out))]
        return out

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.batches(0))

    def __iter__(self) -> _BucketBatches:
        it = _BucketBatches(self, self.epoch)
        self.epoch += 1
        return it

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.seed = int(state["epoch"]), int(state["seed"])


class _BucketBatches(Iterator[list[int]]):
    """One epoch of a :class:`BucketBatchSampler`, resumable from its ``state_dict``."""

    def __init__(self, sampler: BucketBatchSampler, epoch: int) -> None:
        self.sampler, self.epoch = sampler, epoch
        self.order = sampler.batches(epoch)
        self.yielded = 0

    def __iter__(self) -> _BucketBatches:
        return self

    def __next__(self) -> list[int]:
        if self.yielded >= len(self.order):
            raise StopIteration
        self.yielded += 1
        return self.order[self.yielded - 1]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "yielded": self.yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.yielded = int(state["epoch"]), int(state["yielded"])
        self.order = self.sampler.batches(self.epoch)
        self.sampler.epoch = self.epoch + 1
