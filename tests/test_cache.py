"""Latent and text-embedding caches: the same loss with and without, stale caches refused, ``itryon cache`` and training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from itryon.cache.build import build_cache, use_cache
from itryon.cache.lookup import attached, detach
from itryon.cache.store import LatentCache, StaleCacheError
from itryon.cli.main import main as itryon
from itryon.cli.train import main as train
from itryon.config import instantiate
from itryon.data.contract import collate
from itryon.data.manifest import InteractiveManifestDataset
from itryon.data.synthetic import write_split
from itryon.training.run import prepare_config

CONFIG = "configs/experiment/synthetic_disk.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_split(root, "train", 4, seed=0)
    return root


def build_model(data: Path, *overrides: str):
    cfg = prepare_config(
        CONFIG,
        [
            f"data.train.manifest={data / 'train.jsonl'}",
            f"data.val.manifest={data / 'train.jsonl'}",
            f"data.test.manifest={data / 'train.jsonl'}",
            *overrides,
        ],
    )
    torch.manual_seed(0)
    return instantiate(cfg.model, "model")


def loss_on(module, batch) -> torch.Tensor:
    torch.manual_seed(123)  # the same CFG drops, noise and times in both runs
    module.train()
    return module.diffusion_loss(batch)["loss"]


def test_the_loss_on_a_fixed_batch_is_the_same_with_and_without_the_cache(data: Path, tmp_path: Path) -> None:
    module = build_model(data)
    dataset = InteractiveManifestDataset(data / "train.jsonl", num_frames=17)
    batch = collate([dataset[0], dataset[3]])
    without = loss_on(module, batch)
    cache = build_cache(module, dataset, tmp_path / "cache", progress=False)
    assert len(cache) > 0 and (tmp_path / "cache" / "index.json").is_file()
    served = use_cache(module, dataset, tmp_path / "cache", "require")
    encoders = [module.vae, module.conditioning.adapters["caption"].encoder]
    try:
        originals = (module.vae.encode, encoders[1].forward)

        def refuse(*args, **kwargs):
            raise AssertionError("an encoder ran although the cache holds its output")

        module.vae.encode, encoders[1].forward = refuse, refuse  # the VAE and the text encoder leave the step
        with_cache = loss_on(module, batch)
        module.vae.encode, encoders[1].forward = originals
    finally:
        for encoder in encoders:
            detach(encoder)
    torch.testing.assert_close(with_cache, without, rtol=1e-6, atol=1e-7)
    assert served.hits > 0 and served.misses == 0 and attached(module.vae) is None


def test_a_stale_cache_is_refused_naming_what_changed_and_rebuilt_on_request(data: Path, tmp_path: Path) -> None:
    dataset = InteractiveManifestDataset(data / "train.jsonl", num_frames=17)
    module = build_model(data)
    build_cache(module, dataset, tmp_path / "cache", progress=False)
    other = build_model(data)  # the same config: the same encoders, an up-to-date cache
    assert use_cache(other, dataset, tmp_path / "cache", "auto") is not None
    with torch.no_grad():
        next(other.conditioning.adapters["caption"].encoder.parameters()).add_(0.01)  # other text-encoder weights
    with pytest.raises(
        StaleCacheError,
        match=r"stale: the text encoder's config or weights changed .*itryon cache --config CONFIG --split SPLIT --rebuild",
    ):
        use_cache(other, dataset, tmp_path / "cache", "auto")
    rebuilt = use_cache(other, dataset, tmp_path / "cache", "rebuild")
    assert rebuilt is not None and LatentCache.open(tmp_path / "cache").meta == rebuilt.meta
    changed = data / "changed.jsonl"  # the same clips, one caption edited
    changed.write_text((data / "train.jsonl").read_text().replace("wears", "is wearing", 1))
    with pytest.raises(StaleCacheError, match="stale: the manifest changed"):
        use_cache(other, InteractiveManifestDataset(changed, num_frames=17), tmp_path / "cache", "auto")
    assert use_cache(other, dataset, tmp_path / "absent", "auto") is None
    with pytest.raises(Exception, match="data.cache=require but .*absent holds no cache"):
        use_cache(other, dataset, tmp_path / "absent", "require")


def test_itryon_cache_then_training_uses_it_and_refuses_it_when_stale(data: Path, tmp_path: Path, capsys) -> None:
    paths = [
        f"data.train.manifest={data / 'train.jsonl'}",
        f"data.val.manifest={data / 'train.jsonl'}",
        f"data.test.manifest={data / 'train.jsonl'}",
    ]
    assert itryon(["cache", "--config", CONFIG, "--split", "train", "--no-progress", *paths]) == 0
    assert (data / "cache" / "train" / "index.json").is_file()
    assert (
        itryon(["cache", "--config", CONFIG, "--split", "train", *paths]) == 0
        and "up to date" in capsys.readouterr().out
    )
    fast = [
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.limit_val_batches=1",
        "data.batch_size=2",
        "model.sampler.num_steps=1",
        "model.warmup_steps=0",
        "callbacks.metrics.metrics=[ssim]",
        f"output_dir={tmp_path}",
    ]
    assert train(["--config", CONFIG, *paths, *fast, "data.cache=require"]) == 0
    assert train(["--config", CONFIG, *paths, *fast, "seed=1"]) == 2  # another seed: other text-encoder weights
    assert "the cache in" in capsys.readouterr().err
    assert itryon(["cache", "--config", CONFIG, "--split", "train", *paths, "seed=1"]) == 2
