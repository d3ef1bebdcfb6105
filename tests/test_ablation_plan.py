"""Planning an ablation: experiment files, seeds, base-config overrides, the settings guard, eval clips."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from itryon.ablation.cell import EvalSettings
from itryon.ablation.evaluation import eval_data_node
from itryon.ablation.plan import (
    EXPERIMENT_DIR,
    base_config_overrides,
    check_settings,
    parse_seeds,
    plan_cells,
    resolve_experiment,
)
from itryon.config import ConfigError, load_config


def test_experiments_resolve_to_files_and_unknown_names_list_the_known() -> None:
    assert resolve_experiment("no_arope") == ("no_arope", EXPERIMENT_DIR / "no_arope.yaml")
    with pytest.raises(FileNotFoundError, match=r"no experiment 'nope'.*'no_arope'"):
        resolve_experiment("nope")
    with pytest.raises(ValueError, match="'x' is not an integer"):
        parse_seeds("0,x")
    with pytest.raises(ValueError, match=r"\['1'\] more than once"):
        parse_seeds("1,1")


def test_cells_are_laid_out_per_experiment_and_seed(tmp_path) -> None:
    cells = plan_cells(
        tmp_path, ["itryon_full", "baseline"], [0, 2], ["trainer.max_steps=2"], EvalSettings(num_clips=4)
    )
    assert [(c.experiment, c.seed) for c in cells] == [
        ("itryon_full", 0),
        ("itryon_full", 2),
        ("baseline", 0),
        ("baseline", 2),
    ]
    assert cells[3].folder == str(tmp_path / "cells" / "baseline" / "seed2")
    assert cells[1].command.startswith("itryon ablate --experiments itryon_full --seeds 2 --out ")
    assert cells[1].command.endswith("--num-eval-clips 4 --overrides trainer.max_steps=2")


def test_base_config_becomes_leaf_overrides(tmp_path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text("trainer:\n  max_steps: 300\ndata:\n  train: {num_clips: 64}\nloggers: [csv]\nname: study\n")
    overrides = base_config_overrides(path)
    assert overrides == ["trainer.max_steps=300", "data.train.num_clips=64", 'loggers=["csv"]', 'name="study"']
    cfg = load_config(EXPERIMENT_DIR / "no_arope.yaml", overrides)
    assert cfg.trainer.max_steps == 300 and cfg.data.train.num_clips == 64 and list(cfg.loggers) == ["csv"]
    assert cfg.model.conditioning.adapters.actions.positions == "none"  # the experiment's own keys stay
    (tmp_path / "on_default.yaml").write_text("defaults:\n  - /default\ntrainer:\n  max_steps: 7\n")
    assert base_config_overrides(tmp_path / "on_default.yaml") == ["trainer.max_steps=7"]
    (tmp_path / "bad.yaml").write_text("defaults:\n  - /experiment/baseline\n")
    with pytest.raises(ConfigError, match="defaults list"):
        base_config_overrides(tmp_path / "bad.yaml")


def test_an_output_folder_keeps_its_settings(tmp_path) -> None:
    check_settings(tmp_path, ["a=1"], EvalSettings(num_clips=4))
    check_settings(tmp_path, ["a=1"], EvalSettings(num_clips=4, device="cuda", batch_size=8))  # same numbers
    with pytest.raises(ValueError, match=r"num_clips: 4 then, 8 now"):
        check_settings(tmp_path, ["a=1"], EvalSettings(num_clips=8))
    with pytest.raises(ValueError, match=r"--overrides \['a=1'\].*\['a=2'\]"):
        check_settings(tmp_path, ["a=2"], EvalSettings(num_clips=4))


def test_eval_clips_come_from_the_config() -> None:
    cfg = load_config(EXPERIMENT_DIR / "itryon_full.yaml", ["data.val.height=32"])
    node = eval_data_node(cfg, "test", 6)
    assert node["_target_"] == "itryon.data.synthetic.SyntheticTryOnDataset"
    assert (node["split"], node["seed"], node["num_clips"], node["height"]) == ("test", 2, 6, 32)
    assert eval_data_node(cfg, "test", 6, seed=7)["seed"] == 7
    disk = load_config(EXPERIMENT_DIR / "synthetic_disk.yaml")
    node = eval_data_node(disk, "test", 5)
    assert node["manifest"] == "data/synthetic/test.jsonl" and node["limit"] == 5
    node = eval_data_node(cfg, "test", None, manifest="clips/test.jsonl")
    assert node == {
        "_target_": "itryon.data.manifest.InteractiveManifestDataset",
        "manifest": "clips/test.jsonl",
        "num_frames": 17,
    }
    no_test = OmegaConf.create(
        {"data": {"val": {"_target_": "itryon.data.manifest.InteractiveManifestDataset", "manifest": "v.jsonl"}}}
    )
    with pytest.raises(ConfigError, match="no data.test entry"):
        eval_data_node(no_test, "test", 4)
