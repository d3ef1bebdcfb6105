"""Starting a run from an earlier run's weights (the paper's stage 1 -> stage 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from itryon.cli.train import main
from itryon.config import CONFIG_ROOT, instantiate
from itryon.training.run import prepare_config
from itryon.training.weights import load_trained_weights

FAST = [
    "trainer.max_steps=2",
    "trainer.val_check_interval=2",
    "trainer.limit_val_batches=1",
    "data.batch_size=2",
    "data.train.num_clips=4",
    "data.val.num_clips=2",
    "model.sampler.num_steps=2",
]


@pytest.fixture(scope="module")
def stage1_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stage1")
    # stage 1: standard try-on conditions only (no hand prior, no action captions, no AC loss)
    assert main(["--config", str(CONFIG_ROOT / "experiment" / "baseline.yaml"), *FAST, f"output_dir={root}"]) == 0
    (run,) = root.glob("baseline/*")
    return run / "weights" / "model.safetensors"


def test_stage2_starts_from_stage1_and_keeps_new_adapters_fresh(stage1_weights: Path) -> None:
    stage1 = load_file(stage1_weights)
    cfg = prepare_config(CONFIG_ROOT / "experiment" / "itryon_full.yaml", [f"model.init_from={stage1_weights}"])
    module = instantiate(cfg.model, "model")
    state = module.state_dict()
    assert all(torch.equal(state[k], v) for k, v in stage1.items())
    fresh = module.initialised_fresh
    assert fresh and all(k.startswith("conditioning.adapters.hands.") for k in fresh)
    # the hand prior's guider starts as a no-op: its zero-initialised output projection was not overwritten
    assert any(state[k].ndim == 2 and torch.count_nonzero(state[k]) == 0 for k in fresh)


def test_weights_that_do_not_fit_are_named(stage1_weights: Path, tmp_path: Path) -> None:
    cfg = prepare_config(CONFIG_ROOT / "experiment" / "baseline.yaml")
    module = instantiate(cfg.model, "model")
    state = load_file(stage1_weights)
    key = "backbone.patch_embedding.weight"
    state[key] = torch.zeros(1, 2, 3)
    save_file(state, tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match=rf"tensor '{key}' has shape \(1, 2, 3\)"):
        load_trained_weights(module, tmp_path / "bad.safetensors")
    save_file({"backbone.nope": torch.zeros(1)}, tmp_path / "alien.safetensors")
    with pytest.raises(ValueError, match=r"tensors not in the model: \['backbone.nope'\]"):
        load_trained_weights(module, tmp_path / "alien.safetensors", allow_missing=True)
    save_file({key: load_file(stage1_weights)[key]}, tmp_path / "partial.safetensors")
    with pytest.raises(ValueError, match="lacks tensors of the model"):
        load_trained_weights(module, tmp_path / "partial.safetensors")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_trained_weights(module, tmp_path / "missing.safetensors")
