"""Validation covers every key of a training config: root keys, the trainer's and the checkpoint callback's
arguments, logger and strategy entries, annotations resolved in their own module; and the override syntax
that only a defaults list understands is refused with what to write instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from itryon.cli.train import main
from itryon.config import CONFIG_ROOT, ConfigError, load_config, validate
from itryon.training.run import build_checkpoint, build_loggers, prepare_config

REPO = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"
DEFAULT = CONFIG_ROOT / "default.yaml"


def refused(overrides: list[str], message: str, config: Path = DEFAULT) -> None:
    with pytest.raises(ConfigError, match=message):
        prepare_config(config, overrides)


def test_train_py_exits_2_before_training_on_a_trainer_argument_of_the_wrong_type(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "train.py", "trainer.max_steps=abc", f"output_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "'trainer.max_steps' expects int, got str 'abc' (set in command line)" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing was built or written


@pytest.mark.parametrize(
    "override, message",
    [
        ("seed=abc", r"'seed' expects int, got str 'abc' \(set in command line\)"),
        ("name=[a, b]", r"'name' expects str, got list \['a', 'b'\]"),
        (
            "float32_matmul_precision=fast",
            r"'float32_matmul_precision' expects Literal\['highest', 'high', 'medium'\] \| None",
        ),
        ("loggers=csv", r"'loggers' expects a list or mapping of _target_ entries, got str 'csv'"),
    ],
)
def test_root_keys_exit_2_naming_the_key_and_the_expected_type(override, message, tmp_path, capsys) -> None:
    assert main([override, f"output_dir={tmp_path}"]) == 2
    assert pytest.importorskip("re").search(message, capsys.readouterr().err)
    assert not any(tmp_path.iterdir())


def test_lightning_trainer_arguments_are_checked() -> None:
    refused(["trainer.max_steps=abc"], r"'trainer.max_steps' expects int, got str 'abc'")
    refused(
        ["trainer.gradient_clip_val=high"], r"'trainer.gradient_clip_val' expects int \| float \| None, got str 'high'"
    )
    refused(
        ["trainer.max_stepz=3"], r"unknown key 'trainer.max_stepz' \(set in command line\).*did you mean 'max_steps'"
    )
    refused(["trainer.logger=false"], r"'trainer.logger' \(set in command line\): loggers are the root 'loggers' list")
    refused(["trainer.callbacks=[]"], r"callbacks are the root 'callbacks' entries")


def test_model_checkpoint_arguments_are_checked_as_a_target_and_as_plain_arguments(tmp_path: Path) -> None:
    refused(
        ["checkpoint.every_n_train_steps=often"],
        r"'checkpoint.every_n_train_steps' expects int \| None, got str 'often'",
    )
    refused(["checkpoint.save_top=2"], r"unknown key 'checkpoint.save_top'.*ModelCheckpoint takes no 'save_top'")
    # run folders written before checkpoints were _target_ entries hold plain ModelCheckpoint arguments
    plain = tmp_path / "plain.yaml"
    plain.write_text("defaults:\n  - /default\ncheckpoint:\n  _replace_: true\n  every_n_train_steps: 7\n")
    cfg = prepare_config(plain)
    callback = build_checkpoint(cfg.checkpoint, tmp_path)
    assert (
        callback._every_n_train_steps == 7 and callback.save_last and callback.dirpath == str(tmp_path / "checkpoints")
    )
    refused(["checkpoint.every_n_train_steps=often"], r"'checkpoint.every_n_train_steps' expects int \| None", plain)
    refused(["checkpoint.dirpath=/tmp/x"], r"checkpoints go to the run folder's checkpoints/", plain)
    built = build_checkpoint(prepare_config(DEFAULT).checkpoint, tmp_path)
    assert built.dirpath == str(tmp_path / "checkpoints") and built.save_top_k == -1


def test_strategy_entries_are_checked() -> None:
    fsdp2 = CONFIG_ROOT / "experiment" / "fsdp2_cpu.yaml"
    refused(
        ["trainer.strategy.data_parallel_size=two"],
        r"'trainer.strategy.data_parallel_size' expects .*int.*got str 'two'",
        fsdp2,
    )
    # FSDPStrategy's annotations name type-checking-only imports (sharding_strategy): the others are still checked
    entry = "trainer.strategy={_target_: lightning.pytorch.strategies.FSDPStrategy, sharding_strategy: FULL_SHARD, %s}"
    refused(
        [entry % "state_dict_type: partial"], r"'trainer.strategy.state_dict_type' expects Literal\['full', 'sharded'\]"
    )
    refused(
        [entry % "process_group_backend: 3"], r"'trainer.strategy.process_group_backend' expects str \| None, got int 3"
    )
    prepare_config(DEFAULT, [entry % "state_dict_type: sharded"])


def test_logger_entries_are_targets_checked_like_callbacks(tmp_path: Path) -> None:
    wandb = "loggers=[csv, {_target_: lightning.pytorch.loggers.WandbLogger, project: itryon, offline: true}]"
    cfg = prepare_config(DEFAULT, [wandb])  # a W&B logger is configuration, not code
    assert cfg.loggers[1].project == "itryon"
    refused([wandb.replace("offline: true", "offline: maybe")], r"'loggers.1.offline' expects bool, got str 'maybe'")
    refused(
        ["loggers=[csv, {_target_: lightning.pytorch.loggers.MLFlowLogger, tracking_uri: 3}]"],
        r"'loggers.1.tracking_uri' expects str \| None, got int 3",
    )
    refused(
        ["loggers=[wandb]"],
        r"'loggers.0' \(set in command line\): unknown entry 'wandb'; name one of \['csv', 'tensorboard'\]",
    )
    entries = prepare_config(
        DEFAULT, ["loggers=[csv, {_target_: lightning.pytorch.loggers.CSVLogger, name: extra}]"]
    ).loggers
    first, second = build_loggers(entries, tmp_path, resume_step=3)
    assert (
        type(first).__name__ == "ContinuingCSVLogger"
        and first._resume_step == 3
        and first.log_dir == str(tmp_path / "logs" / "csv")
    )
    assert second.save_dir == str(tmp_path) and second.name == "extra"  # the run folder fills save_dir


def test_callback_entries_must_be_targets() -> None:
    refused(
        ["+callbacks.extra=3"], r"'callbacks.extra' \(set in command line\) must be a _target_ entry or null, got int 3"
    )
    with pytest.raises(
        ConfigError, match=r"would replace the mapping 'callbacks.samples' by int 3; to change one of its"
    ):
        load_config(DEFAULT, ["callbacks.samples=3"])
    refused(["callbacks.throughput.windw=3"], r"unknown key 'callbacks.throughput.windw'")


def test_annotations_resolve_in_the_namespace_of_their_module(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv("ITRYON_TARGET_PACKAGES", "annotated_target")
    path = tmp_path / "schedule.yaml"
    path.write_text("schedule:\n  _target_: annotated_target.Schedule\n  steps: 3\n  every: 2\n")
    validate(load_config(path))
    with pytest.raises(
        ConfigError, match=r"'schedule.steps' expects int, got str 'abc'"
    ):  # `Steps`, the module's alias
        validate(load_config(path, ["schedule.steps=abc"]))
    with pytest.raises(ConfigError, match=r"'schedule.every' expects int \| None, got float 2.5"):
        validate(load_config(path, ["schedule.every=2.5"]))


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "model@model.backbone=tiny",
            r"'group@key=name' selects a config file only in a defaults list; write an experiment "
            r"file that starts with 'defaults: \[/default, \{model@model.backbone: tiny\}\]'",
        ),
        (
            "data=synthetic_disk",
            r"would replace the mapping 'data' by str 'synthetic_disk'; to use configs/data/synthetic_disk.yaml "
            r"there, .*\('- data: synthetic_disk'\).*set data.<key>=\.\.\.",
        ),
        ("trainer=gpu", r"would replace the mapping 'trainer' by str 'gpu'; to use configs/trainer/gpu.yaml"),
        ("model.backbone=small", r"\('- model@model.backbone: small'\)"),
    ],
)
def test_overrides_only_a_defaults_list_understands_say_what_to_write(override, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(DEFAULT, [override])
    load_config(DEFAULT, ["callbacks.samples=null", "model.backbone.ffn_dim=96"])  # nulls and leaves are fine
