"""The inference path: pipeline export and loading, infer, per-condition guidance, windows, any length and size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from inference_helpers import tiny_run

from itryon.cli.main import main as itryon
from itryon.data.contract import collate
from itryon.data.synthetic import SyntheticTryOnDataset
from itryon.data.video_io import read_video, to_float
from itryon.inference.export import pipeline_from_run
from itryon.inference.guidance import guidance_groups
from itryon.inference.pipeline import ITryOnPipeline
from itryon.inference.windows import WindowBlender, fit_to_grid, window_starts


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def pipe(run: Path) -> ITryOnPipeline:
    return pipeline_from_run(run)


@pytest.fixture(scope="module")
def clip_batch() -> dict:
    clips = SyntheticTryOnDataset(split="val", num_clips=2, seed=1)
    return collate([clips[0]])


def test_export_then_from_pretrained_equals_itryon_infer(run: Path, tmp_path: Path) -> None:
    """A written split, itryon infer (lossless frames) and the exported folder's pipeline give the same frames."""
    assert itryon(["synth", "--out", str(tmp_path / "data"), "--split", "val", "--num", "1", "--seed", "1"]) == 0
    manifest = tmp_path / "data" / "val.jsonl"
    assert itryon(["export", str(run), "--out", str(tmp_path / "pipe")]) == 0
    assert {p.name for p in (tmp_path / "pipe").iterdir()} >= {
        "model_index.json",
        "transformer",
        "vae",
        "text_encoder",
        "scheduler",
        "conditioning",
    }
    assert not list((tmp_path / "pipe").rglob("*.bin"))
    args = ["infer", "--run", str(run), "--manifest", str(manifest), "--out", str(tmp_path / "pred"), "--no-progress"]
    assert itryon([*args, "--format", "png", "--seed", "5"]) == 0
    from itryon.data.manifest import InteractiveManifestDataset

    batch = collate([InteractiveManifestDataset(manifest, targets=False)[0]])
    loaded = ITryOnPipeline.from_pretrained(tmp_path / "pipe")
    frames = loaded(batch=batch, seed=5, output_type="np").frames[0]
    clip = batch["meta"][0]["id"]
    assert torch.equal(read_video(tmp_path / "pred" / clip), torch.from_numpy(frames))


def test_pipeline_equals_the_modules_generate(pipe: ITryOnPipeline, run: Path, clip_batch: dict) -> None:
    from itryon.training.run import load_run_module

    module = load_run_module(run)
    expected = module.generate(clip_batch, seed=3)
    assert torch.equal(pipe(batch=clip_batch, seed=3).frames, expected)
    assert not torch.equal(pipe(batch=clip_batch, seed=4).frames, expected)  # the seed matters


def test_call_with_raw_inputs_and_a_manifest_without_ground_truth(pipe: ITryOnPipeline, clip_batch: dict) -> None:
    """video + mask gives the agnostic video greyed in the mask, as itryon preprocess draws it."""
    b = clip_batch
    out = pipe(
        video=b["video"][0],
        mask=b["agnostic_mask"][0],
        pose=b["pose"][0],
        hand_prior=b["hand_prior"][0],
        garment=b["garment"][0],
        caption=b["caption"][0],
        actions=b["actions"][0],
        seed=3,
    ).frames
    assert out.shape == b["video"].shape
    with pytest.raises(ValueError, match="mask is required"):
        pipe(video=b["video"][0], garment=b["garment"][0])
    with pytest.raises(ValueError, match=r"adapters read \['hand_prior'\]"):
        pipe(video=b["video"][0], mask=b["agnostic_mask"][0], pose=b["pose"][0], garment=b["garment"][0])


def test_a_41_frame_70x50_input_comes_back_as_41_frames_of_70x50(pipe: ITryOnPipeline, clip_batch: dict) -> None:
    clips = SyntheticTryOnDataset(split="val", num_clips=1, seed=1, num_frames=41, height=72, width=56)
    sample = clips[0]
    batch = collate(
        [
            {
                **sample,
                **{k: sample[k][:, :, :70, :50] for k in ("video", "agnostic", "agnostic_mask", "pose", "hand_prior")},
            }
        ]
    )
    out = pipe(batch=batch, window=17, overlap=5, seed=0).frames
    assert out.shape == (1, 3, 41, 70, 50)
    assert pipe(batch=batch, num_frames=23, seed=0).frames.shape == (1, 3, 23, 70, 50)  # 23 is not 1 + 4k
    assert pipe(batch=batch, height=48, width=40, num_frames=9).frames.shape == (1, 3, 9, 70, 50)
    pasted = pipe(batch=batch, num_frames=9, paste_back=True).frames
    keep = batch["agnostic_mask"][:, :, :9] == 0
    assert torch.equal(
        pasted.expand(-1, 3, -1, -1, -1)[keep.expand(-1, 3, -1, -1, -1)],
        batch["video"][:, :, :9][keep.expand(-1, 3, -1, -1, -1)],
    )


def test_one_window_equals_the_plain_path(pipe: ITryOnPipeline, clip_batch: dict) -> None:
    plain = pipe(batch=clip_batch, seed=2).frames
    assert torch.equal(pipe(batch=clip_batch, seed=2, window=17).frames, plain)
    assert torch.equal(pipe(batch=clip_batch, seed=2, window=41, overlap=8).frames, plain)


def test_windows_cover_the_video_and_overlap() -> None:
    assert window_starts(17, 17, 4) == [0]
    assert window_starts(41, 17, 5) == [0, 12, 24]
    with pytest.raises(ValueError, match="overlap"):
        window_starts(41, 17, 0)


def test_blended_windows_are_continuous_and_colour_matched() -> None:
    """Two windows of one smooth video, the second with a colour drift: the join has no jump and the drift is gone."""
    t = torch.linspace(0, 1, 29).view(1, 1, -1, 1, 1).expand(1, 3, -1, 4, 4).clone()
    t = t + torch.linspace(0, 0.2, 4).view(1, 1, 1, 1, 4)  # spatial variation, so that a std exists
    first, second = t[:, :, :17], t[:, :, 12:] * 1.3 + 0.4  # the second window drifted
    naive = WindowBlender(29, normalise=False)
    naive.add(0, first)
    naive.add(12, second)
    matched = WindowBlender(29, normalise=True)
    matched.add(0, first)
    matched.add(12, second)
    steps = matched.result().diff(dim=2).abs().amax()
    assert steps < 0.05 < naive.result().diff(dim=2).abs().amax()
    torch.testing.assert_close(matched.result(), t, atol=1e-3, rtol=0)


def test_fit_to_grid_pads_outside_the_mask_and_to_1_plus_4k(make_batch) -> None:
    batch = make_batch((1, 10, 13, 11))
    fitted = fit_to_grid(batch, 8, 4)
    assert fitted["agnostic"].shape == (1, 3, 13, 16, 16)
    assert fitted["agnostic_mask"][..., 13:, :].abs().sum() == 0 and fitted["hand_prior"][..., :, 11:].abs().sum() == 0
    assert torch.equal(fitted["agnostic"][:, :, 10:, :13, :11], batch["agnostic"][:, :, -1:].expand(-1, -1, 3, -1, -1))


def test_per_condition_guidance_is_one_batched_call_equal_to_separate_calls(
    pipe: ITryOnPipeline, clip_batch: dict
) -> None:
    model = pipe.denoiser
    calls = []
    predict = model.predict_velocity

    def counting(x, t, cond):
        calls.append(x.shape[0])
        return predict(x, t, cond)

    model.predict_velocity = counting
    try:
        out = pipe(batch=clip_batch, seed=1, garment_guidance=2.0, text_guidance=3.0, hand_guidance=1.5).frames
    finally:
        del model.predict_velocity
    assert calls == [4, 4]  # conditional + three dropped variants, batched, per step
    groups = guidance_groups(model.conditioning, {"garment": 2.0, "text": 3.0, "hands": 1.5})
    assert [g.adapters for g in groups] == [("garment",), ("caption", "actions"), ("hands",)]
    # the same combination from separate conditioning calls
    shape = model.latent_shape(clip_batch["agnostic"])
    conds = [model.conditioning(clip_batch, vae=model.vae, latent_shape=shape)]
    conds += [model.conditioning(clip_batch, vae=model.vae, latent_shape=shape, drop=list(g.adapters)) for g in groups]

    def velocity(x, t):
        vs = [predict(x, t, c) for c in conds]
        return vs[0] + sum((g.scale - 1) * (vs[0] - v) for g, v in zip(groups, vs[1:]))

    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(shape, generator=gen)
    ref = model.vae.decode(pipe.sampler().integrate(velocity, noise)).clamp(-1, 1)
    if pipe.config.paste_back:  # the run's own setting: the source pixels outside the agnostic mask
        keep = 1.0 - clip_batch["agnostic_mask"]
        ref = ref * (1.0 - keep) + clip_batch["agnostic"] * keep
    # batched, the dropped action captions are padded to the others' length and masked: float32 rounding only
    torch.testing.assert_close(out, ref, atol=2e-3, rtol=0)
    assert not torch.allclose(out, pipe(batch=clip_batch, seed=1).frames, atol=1e-3)


def test_guidance_for_a_condition_the_model_lacks_names_the_adapters(pipe: ITryOnPipeline) -> None:
    from itryon.conditioning import ConditioningStack

    stack = pipe.denoiser.conditioning
    only_text = ConditioningStack({"caption": stack.adapters["caption"]})
    with pytest.raises(ValueError, match=r"guidance for 'hands' needs an adapter reading \['hand_prior'\]"):
        guidance_groups(only_text, {"hands": 2.0})


def test_samplers_and_the_folders_scheduler(pipe: ITryOnPipeline, clip_batch: dict, tmp_path: Path) -> None:
    from diffusers import UniPCMultistepScheduler

    euler = pipe(batch=clip_batch, seed=0, num_inference_steps=3).frames
    unipc = pipe(batch=clip_batch, seed=0, num_inference_steps=3, sampler="unipc").frames
    assert not torch.equal(euler, unipc)
    assert itryon(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    pipe.save_pretrained(tmp_path / "p")
    shift = float(pipe.sampler().shift)  # the run's flow shift: the folder's scheduler is then the same UniPC
    UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift).save_pretrained(
        tmp_path / "p" / "scheduler"
    )
    import json

    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "UniPCMultistepScheduler"]
    (tmp_path / "p" / "model_index.json").write_text(json.dumps(index))
    loaded = ITryOnPipeline.from_pretrained(tmp_path / "p")
    assert loaded.sampler().solver == "unipc"
    assert torch.equal(loaded(batch=clip_batch, seed=0, num_inference_steps=3).frames, unipc)


def test_a_folder_naming_a_foreign_library_is_refused(pipe: ITryOnPipeline, tmp_path: Path) -> None:
    import json

    pipe.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    index["vae"] = ["os", "system"]
    (tmp_path / "p" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"component 'vae' names library 'os'"):
        ITryOnPipeline.from_pretrained(tmp_path / "p")


def test_infer_writes_browser_playable_h264(run: Path, tmp_path: Path) -> None:
    import av

    assert itryon(["synth", "--out", str(tmp_path / "data"), "--split", "val", "--num", "1", "--seed", "1"]) == 0
    out = tmp_path / "pred"
    args = ["infer", "--run", str(run), "--manifest", str(tmp_path / "data" / "val.jsonl"), "--out", str(out)]
    assert (
        itryon([*args, "--no-progress", "--frames", "9", "--steps", "1", "--sampler", "dpm++", "--precision", "bf16"])
        == 0
    )
    (video,) = out.glob("*.mp4")
    with av.open(str(video)) as box:
        stream = box.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
    assert to_float(read_video(video)).shape[1] == 9
