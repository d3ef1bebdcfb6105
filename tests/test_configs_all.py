"""Every YAML under configs/ validates and instantiates; every experiment takes a training step."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from itryon.config import CONFIG_ROOT, instantiate, load_config, validate
from itryon.data.contract import collate
from itryon.training.run import prepare_config

PRETRAINED = CONFIG_ROOT / "experiment" / "wan2.1_vace_1.3b_itryon.yaml"  # needs local Wan weights
STAGE1 = CONFIG_ROOT / "experiment" / "wan2.1_vace_1.3b_stage1.yaml"
DISK = CONFIG_ROOT / "experiment" / "synthetic_disk.yaml"  # needs splits written by itryon synth
OWN = CONFIG_ROOT / "experiment" / "own_videos.yaml"  # needs splits written by itryon preprocess
REAL_WEIGHTS = sorted((CONFIG_ROOT / "experiment").glob("wan2.1_*.yaml"))  # all need local Wan weights
EXPERIMENTS = sorted(
    p for p in (CONFIG_ROOT / "experiment").glob("*.yaml") if p not in (*REAL_WEIGHTS, PRETRAINED, STAGE1, DISK, OWN)
)
MODEL_PIECES = sorted((CONFIG_ROOT / "model").glob("*.yaml"))
TRAINER_PIECES = sorted((CONFIG_ROOT / "trainer").glob("*.yaml"))
DATA_PIECES = sorted((CONFIG_ROOT / "data").glob("*.yaml"))
CHEAP = ["data.train.num_clips=2", "data.val.num_clips=2", "data.batch_size=2"]


def flatten(cfg) -> dict:
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        else:
            out[prefix] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def test_experiment_files_exist() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert {"itryon_full", "no_hand_prior", "no_action_captions", "no_arope", "no_ac_loss", "baseline"} <= names


def one_training_step(cfg) -> None:
    L.seed_everything(0)
    module = instantiate(cfg.model, "model")
    data = instantiate(cfg.data, "data")
    batch = collate([data.train_set[i] for i in range(2)])
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    loss = module.diffusion_loss(batch)["loss"]
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad and p.grad is not None]
    assert torch.isfinite(loss) and grads
    opt.step()


@pytest.mark.parametrize("path", REAL_WEIGHTS, ids=lambda p: p.stem)
def test_real_weight_experiments_validate_with_their_paths(path: Path, tmp_path: Path) -> None:
    cfg = prepare_config(path, [f"paths.wan={tmp_path}/wan", f"paths.data={tmp_path}/data"])
    assert cfg.model.vae.dtype == "bfloat16" and cfg.model.conditioning.adapters.garment.mode == "wan"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_takes_a_training_step(path: Path) -> None:
    cfg = prepare_config(path, CHEAP)
    one_training_step(cfg)
    callbacks = instantiate(cfg.callbacks, "callbacks")
    assert all(isinstance(c, L.Callback) for c in callbacks.values())


def test_disk_experiment_trains_on_written_splits(tmp_path: Path) -> None:
    from itryon.data.synthetic import write_split

    for split, seed in (("train", 0), ("val", 1)):
        write_split(tmp_path, split, 2, seed=seed)
    cfg = prepare_config(
        DISK,
        [f"data.train.manifest={tmp_path}/train.jsonl", f"data.val.manifest={tmp_path}/val.jsonl", "data.batch_size=2"],
    )
    del cfg.data["test"]
    one_training_step(cfg)


def test_ablations_differ_from_full_only_where_intended() -> None:
    full = flatten(prepare_config(CONFIG_ROOT / "experiment" / "itryon_full.yaml"))
    expected = {
        "no_arope": {"model.conditioning.adapters.actions.positions"},
        "no_ac_loss": {"model.loss.ac_weight"},
        "arope_hard_mask": {"model.conditioning.adapters.actions.hard_mask"},
        "no_hand_prior": {"model.conditioning.adapters.hands"},
        "no_action_captions": {"model.conditioning.adapters.actions"},
        "baseline": {
            "model.conditioning.adapters.hands",
            "model.conditioning.adapters.actions",
            "model.loss.ac_weight",
        },
    }
    for name, prefixes in expected.items():
        other = flatten(prepare_config(CONFIG_ROOT / "experiment" / f"{name}.yaml"))
        changed = {k for k in set(full) | set(other) if full.get(k, "<absent>") != other.get(k, "<absent>")} - {"name"}
        assert changed, name
        assert all(any(k == p or k.startswith(p + ".") for p in prefixes) for k in changed), (name, sorted(changed))


def test_no_arope_turns_the_rotation_off() -> None:
    full = instantiate(prepare_config(CONFIG_ROOT / "experiment" / "itryon_full.yaml", CHEAP).model.conditioning, "c")
    ablated = instantiate(prepare_config(CONFIG_ROOT / "experiment" / "no_arope.yaml", CHEAP).model.conditioning, "c")
    assert full.adapters["actions"].positions == "segment"
    assert ablated.adapters["actions"].positions == "none"


@pytest.mark.parametrize("path", MODEL_PIECES, ids=lambda p: p.stem)
def test_model_piece_instantiates(path: Path) -> None:
    cfg = load_config(path)
    validate(cfg)
    assert cfg._partial_ and "in_channels" not in cfg and "vace_in_channels" not in cfg  # derived by the module
    channels = {"in_channels": cfg.out_channels, **({"vace_in_channels": 96} if cfg.get("vace_layers") else {})}
    with torch.device("meta"):  # the 14B shapes are built without memory
        model = instantiate(cfg, path.stem)(**channels)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("path", TRAINER_PIECES, ids=lambda p: p.stem)
def test_trainer_piece_validates(path: Path) -> None:
    cfg = OmegaConf.create({"trainer": load_config(path)})
    validate(cfg, {"trainer": L.Trainer})


@pytest.mark.parametrize("path", DATA_PIECES, ids=lambda p: p.stem)
def test_data_piece_validates(path: Path) -> None:
    validate(load_config(path))


def test_pretrained_experiment_validates_and_names_missing_weights(tmp_path: Path) -> None:
    from itryon.config import ConfigError

    with pytest.raises(ConfigError, match="Missing mandatory value: paths.wan"):
        prepare_config(PRETRAINED)
    cfg = prepare_config(PRETRAINED, [f"paths.wan={tmp_path}/wan", f"paths.data={tmp_path}/data"])
    assert cfg.model.backbone._target_ == "itryon.models.WanDiT.from_pretrained"
    assert set(cfg.model.vae.keys()) == {"_target_", "path", "spatial_compression", "temporal_compression", "dtype"}
    assert cfg.model.conditioning.adapters.caption.encoder._target_ == "itryon.models.T5TextEncoder"
    assert cfg.data.train.transforms[0].num_frames == 81
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/wan/transformer"):
        instantiate(cfg.model.backbone, "model.backbone")(in_channels=16, vace_in_channels=96)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/wan/vae"):
        instantiate(cfg.model.vae, "model.vae")


def test_stage1_experiment_is_the_stage2_one_without_interaction_parts(tmp_path: Path) -> None:
    paths = [f"paths.wan={tmp_path}/wan", f"paths.data={tmp_path}/data"]
    stage2 = flatten(prepare_config(PRETRAINED, paths))
    stage1 = flatten(prepare_config(STAGE1, paths))
    changed = {k for k in set(stage1) | set(stage2) if stage1.get(k, "<absent>") != stage2.get(k, "<absent>")}
    prefixes = (
        "name",
        "model.conditioning.adapters.hands",
        "model.conditioning.adapters.actions",
        "model.loss.ac_weight",
        "callbacks.metrics.metrics",
    )
    assert changed and all(k.startswith(prefixes) for k in changed), sorted(changed)
    assert stage1["model.conditioning.adapters.hands"] is None and stage1["model.loss.ac_weight"] == 0.0
