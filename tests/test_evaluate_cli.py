"""``itryon evaluate`` on folders of synthetic clips: JSON output, gates, manifest-driven ISR and errors."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch

from itryon.cli import evaluate
from itryon.data.manifest import write_clip_files, write_manifest
from itryon.data.synthetic import ClipSpec, generate_clip
from itryon.data.video_io import read_video, write_video
from itryon.metrics.isr import CounterfactualJudge, JudgedClip
from itryon.metrics.paired import VideoPSNR, VideoSSIM


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    argv = []
    for k, v in kw.items():
        for item in v if isinstance(v, list) else [v]:
            argv += [f"--{k.replace('_', '-')}", str(item)]
    return parser.parse_args(argv + ["--no-progress", "--device", "cpu"])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Six synthetic clips in a manifest, with a passive one; predictions = videos or counterfactuals."""
    root = tmp_path_factory.mktemp("world")
    records, clips = [], []
    for i in range(6):
        clip = generate_clip("val", i, 0, ClipSpec(num_frames=10, height=32, width=32), passive=(i == 5))
        arrays = {k: v for k, v in clip.items() if k not in ("caption", "actions", "meta")}
        paths = write_clip_files(root / "data", clip["meta"]["id"], arrays, fps=8.0)
        records.append(
            {
                "id": clip["meta"]["id"],
                "fps": 8.0,
                "num_frames": 10,
                "caption": clip["caption"],
                "actions": clip["actions"],
                **paths,
            }
        )
        clips.append(clip)
    manifest = write_manifest(root / "data" / "val.jsonl", records)
    good, bad, gt = root / "good", root / "bad", root / "gt"
    for clip in clips:
        name = clip["meta"]["id"]
        write_video(gt / f"{name}.mp4", clip["video"].transpose(1, 2, 3, 0), lossless=True)
        write_video(good / f"{name}.mp4", clip["video"].transpose(1, 2, 3, 0), lossless=True)
        write_video(bad / name, clip["counterfactual"].transpose(1, 2, 3, 0))  # a PNG frame folder
    return {"manifest": manifest, "good": good, "bad": bad, "gt": gt, "clips": clips}


def test_paired_metrics_and_json(world, tmp_path):
    out = tmp_path / "metrics.json"
    code = evaluate.run(_args(pred=world["bad"], gt=world["gt"], metrics="ssim,psnr", out=out, batch_size=4))
    assert code == 0
    record = json.loads(out.read_text())
    assert record["videos"] == 6 and record["passed"] is True
    assert record["protocols"]["ssim"]["border"] == "valid" and record["higher_is_better"]["psnr"] is True
    to_float = lambda a: torch.from_numpy(a).float().div(127.5).sub(1).unsqueeze(0)  # noqa: E731
    ssim, psnr = VideoSSIM(), VideoPSNR()
    for clip in world["clips"]:
        ssim.update(to_float(clip["counterfactual"]), to_float(clip["video"]))
        psnr.update(to_float(clip["counterfactual"]), to_float(clip["video"]))
    assert record["metrics"]["ssim"] == pytest.approx(float(ssim.compute()), abs=1e-6)
    assert record["metrics"]["psnr"] == pytest.approx(float(psnr.compute()), rel=1e-6)


def test_manifest_isr_and_windowed_metrics(world, tmp_path):
    out_good, out_bad = tmp_path / "good.json", tmp_path / "bad.json"
    names = "isr_counterfactual,psnr_interaction_masked,ssim_interaction"
    assert evaluate.run(_args(pred=world["good"], manifest=world["manifest"], metrics=names, out=out_good)) == 0
    assert (
        evaluate.run(_args(pred=world["bad"], gt=world["gt"], manifest=world["manifest"], metrics=names, out=out_bad))
        == 0
    )
    good, bad = json.loads(out_good.read_text())["metrics"], json.loads(out_bad.read_text())["metrics"]
    assert good["isr_counterfactual"] == 1.0 and good["isr_counterfactual_false_interaction_rate"] == 0.0
    assert bad["isr_counterfactual"] == 0.0 and bad["isr_counterfactual_false_interaction_rate"] == 1.0
    judge, to_float = CounterfactualJudge(), lambda a: torch.from_numpy(a).float().div(127.5).sub(1)  # noqa: E731
    decidable = sum(
        judge.assess(JudgedClip(to_float(c["video"]), c["actions"], to_float(c["video"]), to_float(c["counterfactual"]), to_float(c["interaction_mask"]).add(1).div(2)), slice(a["start"], a["end"]), True) is not None
        for c in world["clips"] for a in c["actions"]
    )  # fmt: skip
    assert good["isr_counterfactual_interactions"] == decidable >= sum(len(c["actions"]) for c in world["clips"]) - 1
    assert good["isr_counterfactual_passive_clips"] == 1
    assert good["psnr_interaction_masked"] == pytest.approx(100.0)  # identical frames hit the MSE floor
    assert bad["ssim_interaction"] < good["ssim_interaction"] == pytest.approx(1.0)


def test_fail_if_gate(world, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert (
        evaluate.run(
            _args(pred=world["bad"], gt=world["gt"], metrics="psnr", out=out, fail_if=["psnr<99", "psnr>1000"])
        )
        == 1
    )
    record = json.loads(out.read_text())
    assert [g["failed"] for g in record["gates"]] == [True, False] and record["passed"] is False
    assert "gate psnr<99: FAILED" in capsys.readouterr().out
    assert evaluate.run(_args(pred=world["good"], gt=world["gt"], metrics="psnr", out=out, fail_if="psnr<99")) == 0
    assert (
        evaluate.run(
            _args(
                pred=world["good"],
                manifest=world["manifest"],
                metrics="isr",
                out=out,
                fail_if="isr_false_interaction_rate>0.5",
            )
        )
        == 0
    )
    # a gate on a value that could not be measured (ISR of a passive clip alone) fails
    gt_only = tmp_path / "gt_passive"
    passive = [c for c in world["clips"] if not c["actions"]][0]
    write_video(gt_only / f"{passive['meta']['id']}.mp4", passive["video"].transpose(1, 2, 3, 0), lossless=True)
    pred_only = tmp_path / "pred_passive"
    write_video(pred_only / f"{passive['meta']['id']}.mp4", passive["video"].transpose(1, 2, 3, 0), lossless=True)
    assert (
        evaluate.run(
            _args(pred=pred_only, gt=gt_only, manifest=world["manifest"], metrics="isr", out=out, fail_if="isr<0.5")
        )
        == 1
    )
    record = json.loads(out.read_text())
    assert record["metrics"]["isr"] is None and record["gates"][0] == {"gate": "isr<0.5", "value": None, "failed": True}


def _error(capsys, **kw) -> str:
    assert evaluate.run(_args(**kw)) == 2
    return capsys.readouterr().err


def test_errors_name_the_files(world, tmp_path, capsys):
    pred = tmp_path / "pred"
    frames = np.zeros((10, 32, 32, 3), dtype=np.uint8)
    write_video(pred / "val-s0-000000.mp4", frames, lossless=True)
    write_video(pred / "stray.mp4", frames, lossless=True)
    err = _error(capsys, pred=pred, gt=world["gt"], out=tmp_path / "x.json")
    assert "only in --pred" in err and "'stray'" in err and "val-s0-000005" in err

    short, small = tmp_path / "short", tmp_path / "small"
    for name in [c["meta"]["id"] for c in world["clips"]]:
        write_video(short / f"{name}.mp4", frames[:7], lossless=True)
        write_video(small / f"{name}.mp4", np.zeros((10, 16, 32, 3), dtype=np.uint8), lossless=True)
    err = _error(capsys, pred=short, gt=world["gt"], out=tmp_path / "x.json")
    assert "has 7 frames" in err and "has 10" in err and "short/val-s0-000000.mp4" in err
    err = _error(capsys, pred=small, gt=world["gt"], out=tmp_path / "x.json")
    assert "is 32x16" in err and "is 32x32" in err

    assert "unknown metric 'fid'" in _error(
        capsys, pred=world["good"], gt=world["gt"], metrics="fid", out=tmp_path / "x.json"
    )
    assert "pass --manifest" in _error(
        capsys, pred=world["good"], gt=world["gt"], metrics="isr", out=tmp_path / "x.json"
    )
    assert "expected NAME OP NUMBER" in _error(
        capsys, pred=world["good"], gt=world["gt"], fail_if="lpips=0.2", out=tmp_path / "x.json"
    )
    assert "'i3d.pt' not found in" in _error(
        capsys, pred=world["good"], gt=world["gt"], metrics="vfid_i3d", weights=tmp_path, out=tmp_path / "x.json"
    )


def test_main_dispatches_evaluate(world, tmp_path):
    from itryon.cli.main import main

    out = tmp_path / "main.json"
    code = main(
        [
            "evaluate",
            "--pred",
            str(world["good"]),
            "--gt",
            str(world["gt"]),
            "--metrics",
            "ssim",
            "--out",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 0 and math.isclose(json.loads(out.read_text())["metrics"]["ssim"], 1.0, abs_tol=1e-6)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """8 val clips written by ``itryon synth`` (every file of the manifest, agnostic inputs included), a mix of
    6 family clips, and for each a folder of black videos named after the clips."""
    from itryon.cli.main import main as itryon

    root = tmp_path_factory.mktemp("written")
    assert (
        itryon(["synth", "--out", str(root / "std"), "--split", "val", "--num", "8", "--seed", "1", "--no-progress"])
        == 0
    )
    assert (
        itryon(
            [
                "synth",
                "--out",
                str(root / "mix"),
                "--split",
                "val",
                "--num",
                "6",
                "--seed",
                "1",
                "--families",
                "contact,caption,timing",
                "--no-progress",
            ]
        )
        == 0
    )
    folders = {}
    for name in ("std", "mix"):
        manifest = root / name / "val.jsonl"
        records = [json.loads(line) for line in manifest.read_text().splitlines()]
        black = root / f"{name}_black"
        for r in records:
            write_video(
                black / f"{r['id']}.mp4",
                np.zeros((r["num_frames"], r["height"], r["width"], 3), dtype=np.uint8),
                lossless=True,
            )
        folders[name] = {"manifest": manifest, "black": black, "records": records}
    return folders


def test_black_videos_score_no_interactions(written, tmp_path, capsys):
    out = tmp_path / "black.json"
    assert (
        evaluate.run(_args(pred=written["std"]["black"], manifest=written["std"]["manifest"], metrics="isr", out=out))
        == 0
    )
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("isr"))
    assert float(printed["isr"]) <= 0.1 and float(printed["isr_false_interaction_rate"]) >= 0.9
    metrics = json.loads(out.read_text())["metrics"]
    assert (
        metrics["isr_interactions"] >= 6 and metrics["isr_chance"] <= 0.1
    )  # the copied agnostic input scores no better
    assert metrics["isr_chance"] == pytest.approx(float(printed["isr_chance"]), abs=1e-6)


def test_manifest_references_score_one_per_family(written, tmp_path):
    mix = written["mix"]
    out, gt = tmp_path / "gt.json", tmp_path / "gt"
    for r in mix["records"]:
        write_video(gt / f"{r['id']}.mp4", read_video(mix["manifest"].parent / r["video"]), lossless=True)
    assert evaluate.run(_args(pred=gt, manifest=mix["manifest"], metrics="isr", out=out)) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert (
        metrics["isr_contact"],
        metrics["isr_caption"],
        metrics["isr_timing"],
        metrics["isr_false_interaction_rate_contact"],
    ) == (1.0, 1.0, 1.0, 0.0)
    assert metrics["isr_caption_chance"] == 0.0 and "isr_standard" not in metrics
    assert evaluate.run(_args(pred=mix["black"], manifest=mix["manifest"], metrics="isr", out=out)) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert max(metrics["isr_contact"], metrics["isr_caption"], metrics["isr_timing"]) == 0.0
