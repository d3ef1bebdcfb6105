"""Config composition, overrides, validation errors and ``_target_`` instantiation."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from itryon.config import ConfigError, instantiate, load_config, origin_of, validate
from itryon.diffusion import ActionConstraintLoss, FlowMatching


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def config_tree(tmp_path: Path) -> Path:
    root = tmp_path / "configs"
    write(
        root / "flow" / "fast.yaml", "_target_: itryon.diffusion.FlowMatching\nshift: 3.0\ntimestep_sampling: uniform\n"
    )
    write(root / "loss" / "ac.yaml", "_target_: itryon.diffusion.ActionConstraintLoss\nac_weight: 0.5\n")
    write(
        root / "default.yaml",
        "defaults:\n  - flow@parts.flow: fast\n  - loss@parts.loss: ac\nname: base\nparts:\n  loss:\n    ac_weight: 0.25\n",
    )
    write(root / "experiment" / "exp.yaml", "defaults:\n  - /default\nname: exp\nparts:\n  flow:\n    shift: 5.0\n")
    return root


def test_defaults_compose_mount_and_file_keys_win(config_tree: Path) -> None:
    cfg = load_config(config_tree / "default.yaml")
    assert cfg.parts.flow.shift == 3.0
    assert cfg.parts.flow.timestep_sampling == "uniform"
    assert cfg.parts.loss.ac_weight == 0.25  # the file's own keys beat its defaults
    assert origin_of(cfg, "parts.flow.shift") == str((config_tree / "flow" / "fast.yaml").resolve())
    assert origin_of(cfg, "parts.loss.ac_weight") == str((config_tree / "default.yaml").resolve())


def test_experiment_overrides_only_what_changes_and_cli_wins(config_tree: Path) -> None:
    cfg = load_config(config_tree / "experiment" / "exp.yaml", ["parts.loss.ac_weight=0", "name=cli"])
    assert cfg.name == "cli"
    assert cfg.parts.flow.shift == 5.0
    assert cfg.parts.flow.timestep_sampling == "uniform"
    assert cfg.parts.loss.ac_weight == 0
    assert origin_of(cfg, "parts.loss.ac_weight") == "command line"


def test_override_parses_yaml_values(config_tree: Path) -> None:
    cfg = load_config(config_tree / "default.yaml", ["extra.list=[1,2]", "extra.flag=true", "extra.x=1e-3"])
    assert list(cfg.extra.list) == [1, 2]
    assert cfg.extra.flag is True
    assert cfg.extra.x == pytest.approx(1e-3)


def test_unknown_key_names_key_file_and_suggestions(config_tree: Path) -> None:
    cfg = load_config(config_tree / "default.yaml", ["parts.flow.shfit=2"])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    msg = str(err.value)
    assert "parts.flow.shfit" in msg
    assert "command line" in msg
    assert "did you mean 'shift'" in msg
    assert "timestep_sampling" in msg  # the valid keys are listed


def test_unknown_key_from_file_names_the_file(config_tree: Path) -> None:
    write(config_tree / "loss" / "ac.yaml", "_target_: itryon.diffusion.ActionConstraintLoss\nac_wieght: 0.5\n")
    cfg = load_config(config_tree / "default.yaml")
    with pytest.raises(
        ConfigError, match=r"unknown key 'parts.loss.ac_wieght' \(set in .*ac.yaml\).*did you mean 'ac_weight'"
    ):
        validate(cfg)


def test_wrong_type_names_expected_and_given(config_tree: Path) -> None:
    cfg = load_config(config_tree / "default.yaml", ["parts.flow.shift=fast"])
    with pytest.raises(ConfigError, match=r"'parts.flow.shift' expects float, got str 'fast'"):
        validate(cfg)
    cfg = load_config(config_tree / "default.yaml", ["parts.flow.timestep_sampling=gaussian"])
    with pytest.raises(ConfigError, match=r"timestep_sampling' expects Literal\['uniform', 'logit_normal', 'mode'\]"):
        validate(cfg)


def test_schema_rejects_unknown_plain_keys(config_tree: Path) -> None:
    cfg = load_config(config_tree / "default.yaml", ["nmae=x"])
    with pytest.raises(ConfigError, match=r"unknown key 'nmae'.*did you mean 'name'"):
        validate(cfg, {"name": str, "parts": None})


def test_bad_target_suggests_close_names(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "thing:\n  _target_: itryon.diffusion.FlowMatchin\n")
    with pytest.raises(ConfigError, match=r"'thing._target_'.*has no 'FlowMatchin'; did you mean FlowMatching"):
        validate(load_config(path))


def test_missing_required_argument(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "dm:\n  _target_: itryon.data.datamodule.SkipBadSamples\n")
    with pytest.raises(ConfigError, match=r"lacks required argument\(s\) \['dataset'\]"):
        validate(load_config(path))


def test_instantiate_builds_nested_targets_and_partials(config_tree: Path) -> None:
    cfg = load_config(config_tree / "default.yaml")
    parts = instantiate(cfg.parts)
    assert isinstance(parts["flow"], FlowMatching) and parts["flow"].shift == 3.0
    assert isinstance(parts["loss"], ActionConstraintLoss) and parts["loss"].ac_weight == 0.25
    part = instantiate({"_target_": "itryon.diffusion.FlowMatching", "_partial_": True, "shift": 2.0})
    assert isinstance(part, functools.partial)
    assert part(timestep_sampling="uniform").shift == 2.0


def test_defaults_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "configs" / "a.yaml", "defaults:\n  - /b\n")
    write(tmp_path / "configs" / "b.yaml", "defaults:\n  - /a\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "configs" / "a.yaml")


def test_bad_override_syntax(config_tree: Path) -> None:
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_config(config_tree / "default.yaml", ["parts.flow.shift"])


def test_replace_marker_swaps_an_entry_instead_of_merging(config_tree: Path) -> None:
    write(
        config_tree / "swap.yaml",
        "defaults:\n  - /default\nparts:\n  flow:\n    _replace_: true\n    _target_: itryon.diffusion.EulerSampler\n    num_steps: 3\n",
    )
    cfg = load_config(config_tree / "swap.yaml")
    assert set(cfg.parts.flow.keys()) == {"_target_", "num_steps"}  # no leftover FlowMatching keys
    assert cfg.parts.loss.ac_weight == 0.25
    validate(cfg)
