"""No raw crash, and one bad clip never stops a run: skips are reported in the run folder, errors come early."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from reliability_helpers import DISK, disk_overrides, one_line_error, only_run, records, rewrite
from torch.utils.data import Dataset

from itryon.cli.main import main as itryon
from itryon.cli.train import main as train
from itryon.data.contract import interaction_from_actions
from itryon.data.datamodule import SKIPPED_FILE, SkipBadSamples, TryOnDataModule
from itryon.data.manifest import InteractiveManifestDataset, ManifestError
from itryon.data.video_io import read_video, write_video

FIELDS = (
    "video",
    "agnostic",
    "pose",
    "hand_prior",
    "counterfactual",
    "agnostic_mask",
    "interaction_mask",
    "counterfactual_mask",
)


def _halve_clip(root: Path, record: dict) -> None:
    """Every video and mask of the clip at half the size: a clip of another resolution."""
    for key in FIELDS:
        if key in record:
            path = root / record[key]
            frames = read_video(path)[:, ::2, ::2].contiguous()
            write_video(path, frames, lossless=path.suffix == ".mp4")


def _shrink_garment(root: Path, record: dict) -> None:
    for key in ("garment", "garment_mask"):
        path = root / record[key]
        with Image.open(path) as im:
            small = im.resize((im.width // 2, im.height // 2))
        small.save(path)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    """The 4-clip split with clip 1 undecodable, clip 2 at another resolution and clip 3's garment at another size."""
    from itryon.data.synthetic import ClipSpec, write_split

    manifest = write_split(tmp_path_factory.mktemp("damaged"), "val", 4, 1, ClipSpec(num_frames=5))
    rs, root = records(manifest), manifest.parent
    (root / rs[1]["video"]).write_bytes(b"not a video")
    _halve_clip(root, rs[2])
    _shrink_garment(root, rs[3])
    return manifest


@pytest.fixture(scope="module")
def damaged_run(damaged: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert train(["--config", str(DISK), *disk_overrides(damaged), f"output_dir={out}", "name=damaged"]) == 0
    return only_run(out)


def _skips(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_undecodable_clip_is_skipped_and_recorded_in_the_run_folder(damaged_run):
    skips = _skips(damaged_run / SKIPPED_FILE)
    bad = [s for s in skips if s["clip"] == "val-s1-000001"]
    assert bad and all("cannot decode video" in s["error"] and "val-s1-000001/video.mp4" in s["error"] for s in bad)
    assert {s["split"] for s in bad} == {"train", "val"}
    assert all(s["replaced_by"] is not None for s in bad if s["split"] == "train")
    assert all(s["replaced_by"] is None for s in bad if s["split"] == "val")  # left out, not replaced


def test_a_clip_of_another_resolution_is_skipped_naming_both_sizes(damaged_run):
    (skip, *_) = [s for s in _skips(damaged_run / SKIPPED_FILE) if s["clip"] == "val-s1-000002"]
    assert (
        "clip 'val-s1-000002': frames are 24x32 (HxW), the dataset serves 48x64" in skip["error"]
        and "Resize" in skip["error"]
    )


def test_a_garment_of_another_size_is_skipped_naming_the_file(damaged_run):
    (skip, *_) = [s for s in _skips(damaged_run / SKIPPED_FILE) if s["clip"] == "val-s1-000003"]
    assert (
        "garment val/val-s1-000003/garment.png is" in skip["error"]
        and "garment_height and garment_width" in skip["error"]
    )


def test_the_skip_count_is_in_metrics_json_and_the_logs(damaged_run):
    metrics = json.loads((damaged_run / "metrics.json").read_text())
    assert metrics["skipped_clips"] == 4 and metrics["skipped_by_split"] == {"train": 3, "val": 1}
    rows = list(csv.DictReader((damaged_run / "logs" / "csv" / "metrics.csv").open()))
    logged = [float(r["data/skipped_clips"]) for r in rows if r.get("data/skipped_clips")]
    assert logged and logged[-1] == 4.0


class Flaky(Dataset):
    """Samples named c0..c5; the indices in ``bad`` fail to load."""

    def __init__(self, bad: set[int], n: int = 6) -> None:
        self.bad, self.n = bad, n

    def __len__(self) -> int:
        return self.n

    def clip_id(self, i: int) -> str:
        return f"c{i}"

    def __getitem__(self, i: int) -> dict:
        if i in self.bad:
            raise OSError(f"corrupt file for clip {i}")
        t, h, w = 5, 8, 8
        return {"video": torch.zeros(3, t, h, w), "agnostic": torch.zeros(3, t, h, w), "agnostic_mask": torch.ones(1, t, h, w),
                "pose": torch.zeros(3, t, h, w), "garment": torch.zeros(3, 4, 4), "caption": "", "actions": [],
                "interaction": interaction_from_actions([], t), "meta": {"id": f"c{i}"}}  # fmt: skip


def test_validation_never_counts_a_clip_twice(tmp_path):
    dm = TryOnDataModule(val=Flaky({2}), batch_size=2)
    dm.report_skips_to(tmp_path / SKIPPED_FILE)
    served = [m["id"] for batch in dm.val_dataloader() for m in batch["meta"]]
    assert served == ["c0", "c1", "c3", "c4", "c5"]  # c2 left out, c3 not served twice
    (skip,) = _skips(tmp_path / SKIPPED_FILE)
    assert skip == {
        "split": "val",
        "index": 2,
        "clip": "c2",
        "error": "OSError: corrupt file for clip 2",
        "replaced_by": None,
    }


def test_a_validation_batch_of_only_bad_clips_is_skipped_by_the_model():
    from itryon.training import TryOnModule

    dm = TryOnDataModule(val=Flaky({0, 1}), batch_size=2)
    batches = list(dm.val_dataloader())
    assert batches[0] is None and [m["id"] for m in batches[1]["meta"]] == ["c2", "c3"]
    assert TryOnModule.validation_step(object.__new__(TryOnModule), None, 0) is None


def test_training_replaces_a_bad_clip_and_says_so(tmp_path):
    ds = SkipBadSamples(Flaky({2}), name="train", report_path=tmp_path / SKIPPED_FILE)
    assert ds[2]["meta"]["id"] == "c3"
    assert _skips(tmp_path / SKIPPED_FILE)[0]["replaced_by"] == 3


def test_a_clip_lacking_a_key_an_adapter_needs_fails_at_construction(split, tmp_path, capsys):
    bad = rewrite(split, split.parent / "no_hands.jsonl", lambda rs: rs[2].pop("hand_prior"))
    try:
        assert train(["--config", str(DISK), *disk_overrides(bad), f"output_dir={tmp_path}"]) == 2
    finally:
        bad.unlink()
    err = one_line_error(capsys.readouterr().err)
    assert (
        "clip 'val-s1-000002' lacks field 'hand_prior', which conditioning adapter 'hands' (HandPriorAdapter) needs"
        in err
    )
    assert not list(tmp_path.glob("*/*/checkpoints"))


def test_without_the_adapter_the_same_clips_are_fine(split):
    dataset = InteractiveManifestDataset(split)
    dataset.require_keys({"adapter 'caption'": ["caption"]})
    with pytest.raises(
        ManifestError,
        match=r"clip 'val-s1-000000' yields no key 'depth' \(the manifest format has no such field\), which conditioning adapter 'depth'",
    ):
        dataset.require_keys({"conditioning adapter 'depth' (DepthAdapter)": ["depth"]})


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.lr=${nope}", "cannot resolve 'model.lr' (set in command line): Interpolation key 'nope' not found"),
        ("model.lr=${model.nope}", "Interpolation key 'model.nope' not found"),
        ("model.lr=${oc.env:ITRYON_NO_SUCH_VARIABLE}", "Environment variable 'ITRYON_NO_SUCH_VARIABLE' not found"),
        ("model.lr=${", "override 'model.lr=${' (command line): not a valid YAML value or interpolation"),
        ("model=${model}", "cannot resolve 'model' (set in command line)"),
        ("model.lr=[1,", "override 'model.lr=[1,' (command line): not a valid YAML value"),
    ],
    ids=["missing-key", "missing-nested", "missing-env", "unclosed", "self-reference", "bad-yaml"],
)
def test_interpolation_errors_in_overrides_are_one_line(override, message, capsys):
    assert train(["--print-config", override]) == 2
    assert message in one_line_error(capsys.readouterr().err)


# ---------------------------------------------------------------------------------------------------
# itryon infer


def test_infer_skips_undecodable_clips_and_nan_fps_and_goes_on(damaged_run, damaged, tmp_path, capsys):
    manifest = rewrite(
        damaged,
        damaged.parent / "infer.jsonl",
        lambda rs: (
            rs[0].update(fps=float("nan"))
            or rs.append(dict(rs[1], id="copy-of-0", video=records(damaged)[0]["video"], fps=8.0))
        ),
    )
    out = tmp_path / "preds"
    try:
        code = itryon(
            [
                "infer",
                "--run",
                str(damaged_run),
                "--manifest",
                str(manifest),
                "--out",
                str(out),
                "--steps",
                "1",
                "--no-progress",
            ]
        )
    finally:
        manifest.unlink()
    assert code == 0
    # clips of another size are generated at their own size; the bad ones are reported and the run goes on
    assert sorted(p.stem for p in out.glob("*.mp4")) == ["copy-of-0", "val-s1-000002", "val-s1-000003"]
    skips = {s["clip"]: s["error"] for s in _skips(out / SKIPPED_FILE)}
    assert set(skips) == {"val-s1-000000", "val-s1-000001"}
    assert "'fps' must be a positive finite number, got float nan" in skips["val-s1-000000"]
    assert "val-s1-000001/video.mp4: cannot decode video" in skips["val-s1-000001"]
    assert read_video(out / "val-s1-000002.mp4").shape[1:3] == (24, 32)
    printed = capsys.readouterr().out
    assert "wrote 3 videos" in printed and "skipped 2 clip(s)" in printed


# ---------------------------------------------------------------------------------------------------
# --resume of a bad checkpoint


@pytest.fixture
def run_copy(damaged_run, tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(damaged_run, dst)
    return dst


def test_resume_of_a_zero_byte_checkpoint_is_one_line(run_copy, capsys):
    ckpt = run_copy / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(b"")
    assert train(["--resume", str(ckpt)]) == 2
    assert (
        one_line_error(capsys.readouterr().err)
        == f"error: cannot resume from {ckpt}: empty file (0 bytes), not a Lightning checkpoint; it was probably cut short by a kill"
    )


def test_resume_of_a_truncated_checkpoint_is_one_line(run_copy, capsys):
    ckpt = run_copy / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert train(["--resume", str(ckpt)]) == 2
    err = one_line_error(capsys.readouterr().err)
    assert f"cannot resume from {ckpt}: not a readable Lightning checkpoint (truncated or another format" in err


def test_resume_of_a_foreign_checkpoint_is_one_line(run_copy, capsys):
    ckpt = run_copy / "checkpoints" / "last.ckpt"
    torch.save({"model": {"w": torch.zeros(2)}}, ckpt)
    assert train(["--resume", str(ckpt)]) == 2
    assert (
        "not a Lightning checkpoint of a training run (it has no 'state_dict' and 'global_step'; found ['model'])"
        in one_line_error(capsys.readouterr().err)
    )


def test_resume_of_a_run_folder_skips_an_incomplete_last_checkpoint(run_copy, caplog):
    from itryon.training.run import resume_target

    (run_copy / "checkpoints" / "last.ckpt").write_bytes(b"")
    run, ckpt = resume_target(run_copy)
    assert run == run_copy and ckpt.name == "epoch=1-step=4.ckpt"
    assert "skipping last.ckpt: empty file (0 bytes)" in caplog.text


def test_resume_with_an_override_that_changes_shapes_names_the_tensor(run_copy, capsys):
    assert train(["--resume", str(run_copy), "model.backbone.ffn_dim=96"]) == 2
    err = one_line_error(capsys.readouterr().err)
    assert re.search(
        r"cannot resume from .*checkpoints/(last|epoch=1-step=4).ckpt: tensor 'backbone\.\S+' has shape \((128, 64|64, 128)\) in the checkpoint "
        r"but \((96, 64|64, 96)\) in the model built from .*config.yaml with the overrides model.backbone.ffn_dim=96",
        err,
    ), err
