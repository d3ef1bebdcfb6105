"""Shape buckets: one shape per batch, every clip once per epoch, spans remapped, exact resume of the sampler."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset
from torchdata.stateful_dataloader import StatefulDataLoader

from itryon.data.buckets import BucketBatchSampler, ShapeBuckets
from itryon.data.datamodule import TryOnDataModule
from itryon.data.manifest import InteractiveManifestDataset, read_manifest, write_manifest
from itryon.data.synthetic import write_split
from itryon.data.synthetic.spec import ClipSpec


def test_clips_get_the_nearest_aspect_and_the_most_frames_they_hold() -> None:
    buckets = ShapeBuckets([[48, 64], [64, 48], [56, 56]], frames=[9, 17, 33])
    assert buckets.assign(480, 832, 100) == (48, 64, 33)
    assert buckets.assign(1920, 1080, 20) == (64, 48, 17)
    assert buckets.assign(500, 520, 9) == (56, 56, 9)
    assert buckets.assign(500, 520, 8) is None
    with pytest.raises(ValueError, match=r"frame counts \[16\] are not 1 \+ 4k"):
        ShapeBuckets([[8, 8]], frames=[9, 16])


SHAPES = [(48, 64, 17)] * 7 + [(64, 48, 9)] * 4 + [(56, 56, 17)] * 2


def test_every_batch_is_one_shape_and_every_clip_is_served_once_per_epoch() -> None:
    sampler = BucketBatchSampler(SHAPES, batch_size=3, seed=5)
    epochs = [list(sampler) for _ in range(3)]
    for batches in epochs:
        assert all(len({SHAPES[i] for i in b}) == 1 for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(len(SHAPES)))
        assert len(batches) == len(sampler) == 3 + 2 + 1
    assert epochs[0] != epochs[1]  # a new order each epoch
    assert list(BucketBatchSampler(SHAPES, 3, seed=5)) == epochs[0]  # the same for the same seed and epoch
    dropped = list(BucketBatchSampler(SHAPES, 3, seed=5, drop_last=True))
    assert all(len(b) == 3 for b in dropped) and len(dropped) == 2 + 1


class Indices(Dataset):
    def __len__(self) -> int:
        return len(SHAPES)

    def __getitem__(self, i: int) -> int:
        return i


@pytest.mark.parametrize("workers", [0, 2])
def test_a_stateful_loader_resumes_with_the_same_batches(workers: int) -> None:
    def loader():
        return StatefulDataLoader(
            Indices(), batch_sampler=BucketBatchSampler(SHAPES, 3, seed=1), num_workers=workers, collate_fn=list
        )

    straight = loader()
    expected = [b for _ in range(2) for b in straight]  # two epochs
    first = loader()
    seen, state = [], None
    for _epoch in range(2):
        for batch in first:
            seen.append(batch)
            if len(seen) == 4:  # stop inside the first epoch
                state = first.state_dict()
                break
        if state is not None:
            break
    resumed = loader()
    resumed.load_state_dict(state)
    rest = list(resumed) + list(resumed)  # the rest of epoch 0, then epoch 1
    assert seen + rest == expected


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """A manifest of clips of three sizes and lengths, one too short for any bucket."""
    root = tmp_path_factory.mktemp("mixed")
    records = []
    for split, num, frames, h, w in (("train", 3, 17, 48, 64), ("val", 2, 13, 64, 48), ("test", 1, 5, 48, 64)):
        write_split(root, split, num, seed=0, spec=ClipSpec(num_frames=frames, height=h, width=w))
        records += read_manifest(root / f"{split}.jsonl")
    write_manifest(root / "all.jsonl", records)
    return root / "all.jsonl"


def test_bucketed_clips_are_served_at_their_shape_with_spans_on_the_kept_frames(mixed: Path) -> None:
    buckets = ShapeBuckets([[32, 48], [48, 32]], frames=[9, 17], garment_size=[32, 32])
    data = TryOnDataModule(
        train=InteractiveManifestDataset(mixed), val=InteractiveManifestDataset(mixed), batch_size=2, buckets=buckets
    )
    inner = data.train_set.dataset
    assert [r["clip"] for r in inner.rejected] == [read_manifest(mixed)[-1]["id"]]
    assert sorted(inner.shapes) == [(32, 48, 17)] * 3 + [(48, 32, 9)] * 2
    torch.manual_seed(0)
    served = []
    for batch in data.train_dataloader():
        _, _, t, h, w = batch["video"].shape
        assert batch["garment"].shape[-2:] == (32, 32)
        for acts, weights in zip(batch["actions"], batch["interaction"]):
            assert all(0 <= a["start"] < a["end"] <= t for a in acts)
            expected = torch.zeros(t)
            for a in acts:
                expected[a["start"] : a["end"]] = 1
            assert torch.equal(weights, expected)
        served += [m["id"] for m in batch["meta"]]
        assert (h, w, t) in {(32, 48, 17), (48, 32, 9)}
    assert sorted(served) == sorted(r["id"] for r in read_manifest(mixed)[:-1])
    val = next(iter(data.val_dataloader()))
    assert val["meta"][0]["source_frames"][0] == 0  # validation crops start at frame 0


def test_a_bad_clip_is_replaced_by_one_of_its_own_bucket(mixed: Path) -> None:
    records = read_manifest(mixed)
    records[0] = {**records[0], "video": "train/missing.mp4"}  # a 48x64 clip whose video is gone
    write_manifest(mixed.parent / "broken.jsonl", records)
    data = TryOnDataModule(
        train=InteractiveManifestDataset(mixed.parent / "broken.jsonl", check_files=False),
        batch_size=3,
        buckets=ShapeBuckets([[32, 48], [48, 32]], frames=[9, 17]),
    )
    shapes = [tuple(batch["video"].shape[1:]) for batch in data.train_dataloader()]
    assert sorted(shapes) == [(3, 9, 48, 32), (3, 17, 32, 48)]  # the bad clip's place is taken in its own bucket
    assert [i for i, _ in data.train_set.skipped] == [0]
