"""No code from data: configs build only allowed classes unless trusted; pickled code in files is refused in one line."""

from __future__ import annotations

import os
import pickle
import re
import sys
from pathlib import Path

import pytest
import torch
from reliability_helpers import one_line_error

from itryon.cli.main import main as itryon
from itryon.cli.train import main as train
from itryon.config import ConfigError, instantiate, load_config, trust_targets, validate


def _marker_command(marker: Path) -> str:
    return f"touch {marker}"


def _write_run(run: Path, model_yaml: str, with_checkpoint: bool = False) -> Path:
    """A run folder whose config.yaml builds ``model`` from the given YAML (an attacker's edit)."""
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(
        "name: evil\nseed: 0\noutput_dir: runs\n"
        f"model:\n{model_yaml}"
        "data:\n  _target_: itryon.data.datamodule.TryOnDataModule\n"
        "  val:\n    _target_: itryon.data.synthetic.SyntheticTryOnDataset\n    num_clips: 1\n"
    )
    if with_checkpoint:
        torch.save({"state_dict": {}, "global_step": 1}, run / "checkpoints" / "last.ckpt")
    return run


class RunsCode:
    """Unpickling it would run a command (what a hostile checkpoint holds)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_infer_refuses_a_run_folder_config_that_calls_os_system(tmp_path, capsys):
    marker = tmp_path / "marker"
    run = _write_run(tmp_path / "run", f"  _target_: os.system\n  command: {_marker_command(marker)}\n")
    code = itryon(["infer", "--run", str(run), "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "out")])
    assert code == 2 and not marker.exists()
    err = one_line_error(capsys.readouterr().err)
    assert (
        "'model._target_'" in err
        and str(run / "config.yaml") in err
        and "'os.system' is not allowed" in err
        and "--trust-config" in err
    )


def test_resume_refuses_a_run_folder_config_that_calls_os_system(tmp_path, capsys):
    marker = tmp_path / "marker"
    run = _write_run(
        tmp_path / "run", f"  _target_: os.system\n  command: {_marker_command(marker)}\n", with_checkpoint=True
    )
    assert train(["--resume", str(run)]) == 2 and not marker.exists()
    err = one_line_error(capsys.readouterr().err)
    assert "'os.system' is not allowed" in err and str(run / "config.yaml") in err


@pytest.mark.parametrize(
    "target, why",
    [
        ("torch.os.system", "resolves to 'os'"),
        ("builtins.exec", "'builtins' is not one of the allowed packages"),
        ("subprocess.run", "'subprocess' is not one of the allowed packages"),
        ("itryon.config.importlib.import_module", "loads or runs code"),
        ("torch.hub.load", "loads or runs code"),
        ("torch.utils.cpp_extension.load_inline", "loads or runs code"),
        ("itryon.cli.main.main", "loads or runs code"),
        ("torch.nn.Module.__subclasses__", "private or invalid part"),
        ("itryon.data.video_io.av.open", "resolves to 'av'"),
        ("torch.nn.functional.relu", "not a class or a from_* constructor"),
    ],
)
def test_targets_outside_the_allow_list_are_refused(tmp_path, target, why):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(f"thing:\n  _target_: {target}\n")
    with pytest.raises(
        ConfigError,
        match=f"'thing._target_' \\(set in .*c.yaml\\): target '{target}' is not allowed: .*{re.escape(why)}",
    ):
        validate(load_config(cfg_file))
    with pytest.raises(ConfigError, match="is not allowed"):
        instantiate({"_target_": target})


def test_a_module_that_runs_code_on_import_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    (tmp_path / "evil_import.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="'evil_import' is not one of the allowed packages"):
        instantiate({"_target_": "evil_import.Thing"})
    assert not marker.exists() and "evil_import" not in sys.modules


def test_library_switches_that_run_model_code_are_refused():
    with pytest.raises(ConfigError, match="'trust_remote_code' makes it run code shipped with the model files"):
        instantiate(
            {
                "_target_": "transformers.AutoModel.from_pretrained",
                "pretrained_model_name_or_path": "x",
                "trust_remote_code": True,
            }
        )


def test_a_command_line_callback_calling_os_system_is_refused(tmp_path, capsys):
    marker = tmp_path / "marker"
    override = f"callbacks.evil={{_target_: os.system, command: {_marker_command(marker)}}}"
    assert train([override, f"output_dir={tmp_path}"]) == 2 and not marker.exists()
    err = one_line_error(capsys.readouterr().err)
    assert "'callbacks.evil._target_' (set in command line)" in err and "not allowed" in err
    assert not list(tmp_path.glob("*/*"))  # nothing was built


def test_trust_flag_env_and_package_list_admit_a_users_own_class(monkeypatch, capsys):
    override = "callbacks.kill={_target_: kill_switch.KillAt, step: 1}"  # tests/reliability/plugins
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    assert train(["--print-config", override]) == 2
    assert "'kill_switch' is not one of the allowed packages" in capsys.readouterr().err
    assert train(["--print-config", "--trust-config", override]) == 0
    monkeypatch.setenv("ITRYON_TRUST_CONFIG", "1")
    assert train(["--print-config", override]) == 0
    monkeypatch.delenv("ITRYON_TRUST_CONFIG")
    monkeypatch.setenv("ITRYON_TARGET_PACKAGES", "kill_switch")
    assert train(["--print-config", override]) == 0
    with trust_targets():
        assert instantiate({"_target_": "kill_switch.KillAt", "step": 3}).step == 3


def _pickled_code_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": RunsCode(_marker_command(marker)), "global_step": 1}, path)
    return path


def test_resume_of_a_checkpoint_holding_code_is_a_one_line_error(tmp_path, capsys):
    marker = tmp_path / "marker"
    run = _write_run(tmp_path / "run", "  _target_: itryon.training.TryOnModule\n")
    ckpt = _pickled_code_checkpoint(run / "checkpoints" / "last.ckpt", marker)
    assert train(["--resume", str(ckpt)]) == 2 and not marker.exists()
    err = one_line_error(capsys.readouterr().err)
    assert str(ckpt) in err and "system, which a weights-only load refuses" in err


def test_infer_weights_holding_code_are_a_one_line_error(tmp_path, capsys):
    from itryon.io_utils import UnreadableFileError
    from itryon.training.weights import read_weights

    marker = tmp_path / "marker"
    ckpt = _pickled_code_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(
        UnreadableFileError, match=r"evil.ckpt: not loadable as a Lightning checkpoint: it references \S*system"
    ):
        read_weights(ckpt)
    assert not marker.exists()


def test_init_from_weights_holding_code_stop_the_run_in_one_line(tmp_path, capsys):
    marker = tmp_path / "marker"
    ckpt = _pickled_code_checkpoint(tmp_path / "evil.ckpt", marker)
    assert (
        train([f"model.init_from={ckpt}", f"output_dir={tmp_path}", "data.train.num_clips=2", "data.val.num_clips=1"])
        == 2
    )
    assert not marker.exists()
    err = one_line_error(capsys.readouterr().err)
    assert "evil.ckpt: not loadable" in err


def test_pickle_is_never_used_to_read_a_metric_weight_file(tmp_path):
    from itryon.io_utils import UnreadableFileError
    from itryon.metrics.weights import load_state_dict

    marker = tmp_path / "marker"
    path = tmp_path / "i3d.pt"
    with path.open("wb") as f:
        pickle.dump({"w": RunsCode(_marker_command(marker))}, f)
    with pytest.raises(UnreadableFileError, match=r"i3d.pt: not"):
        load_state_dict(path)
    assert not marker.exists()
