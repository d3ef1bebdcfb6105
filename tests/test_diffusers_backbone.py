"""diffusers' WanVACETransformer3DModel behind the backbone seam: the same output as WanDiT on the same weights,
the kinds it refuses, and loading a diffusers folder with new input channels."""

from __future__ import annotations

import pytest
import torch

from itryon.config import CONFIG_ROOT, instantiate
from itryon.models import BackboneInputs, DiffusersWanVACE, WanDiT
from itryon.models.loading import to_diffusers_names, to_native_names
from itryon.training.run import prepare_config

C, EXTRA, VACE = 4, 3, 6  # latent channels, channels conditions, VACE context channels
SHAPE = dict(
    in_channels=C + EXTRA,
    out_channels=C,
    dim=24,
    ffn_dim=40,
    num_layers=3,
    num_heads=2,
    text_dim=16,
    freq_dim=32,
    rope_max_seq_len=64,
    vace_layers=[0, 2],
    vace_in_channels=VACE,
)
TOL = 1e-5


@pytest.fixture(scope="module")
def pair() -> tuple[WanDiT, DiffusersWanVACE]:
    """A WanDiT with random weights and the diffusers backbone holding the same weights."""
    torch.manual_seed(0)
    ours = WanDiT(**SHAPE).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in ours.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    theirs = DiffusersWanVACE(**SHAPE).eval()
    theirs.transformer.load_state_dict(to_diffusers_names(ours.state_dict()), strict=True)
    return ours, theirs


def inputs(frames: int = 3, refs: int = 1, vace_frames: int | None = None, seed: int = 2) -> tuple:
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(2, C, frames, 6, 4, generator=g)
    timestep = torch.tensor([120.0, 870.0])
    conditions = BackboneInputs(
        context=torch.randn(2, 5, 16, generator=g),
        channels=torch.randn(2, EXTRA, frames, 6, 4, generator=g),
        vace_context=torch.randn(2, VACE, vace_frames or frames, 6, 4, generator=g),
        vace_context_scale=torch.tensor([0.7, 1.3]),
        reference_latents=torch.randn(2, C + EXTRA, refs, 6, 4, generator=g) if refs else None,
    )
    return latents, timestep, conditions


@pytest.mark.parametrize(
    "case",
    [dict(), dict(refs=0), dict(refs=2), dict(vace_frames=4)],
    ids=["reference", "no_reference", "two_references", "context_over_references"],
)
def test_both_backbones_give_the_same_output_on_the_same_weights(pair, case):
    ours, theirs = pair
    latents, timestep, conditions = inputs(**case)
    with torch.no_grad():
        expected = ours(latents, timestep, conditions)
        actual = theirs(latents, timestep, conditions)
        without_vace = ours(latents, timestep, conditions.replace(vace_context=None))
    assert actual.shape == latents.shape and expected.abs().max() > 1.0
    torch.testing.assert_close(actual, expected, atol=TOL, rtol=TOL)
    assert (expected - without_vace).abs().max() > 1e-2  # the VACE branch matters


def test_wan_layout_references_give_the_same_output_on_both_backbones(pair):
    """``vace_reference``: the stream's leading frame is the reference's position (noise), the reference latent is in
    the VACE context only; both backbones return every frame of the stream."""
    ours, theirs = pair
    latents, timestep, conditions = inputs(frames=4, refs=0)  # 1 reference position + 3 video frames
    g = torch.Generator().manual_seed(5)
    conditions = conditions.replace(
        vace_reference=torch.randn(2, C, 1, 6, 4, generator=g),
        vace_context=conditions.vace_context[:, :, 1:],  # the VACE context and channels cover the video frames
        channels=conditions.channels[:, :, 1:],
    )
    with torch.no_grad():
        expected = ours(latents, timestep, conditions)
        actual = theirs(latents, timestep, conditions)
        moved = ours(latents, timestep, conditions.replace(vace_reference=conditions.vace_reference + 1))
    assert actual.shape == expected.shape == latents.shape
    torch.testing.assert_close(actual, expected, atol=TOL, rtol=TOL)
    assert (moved - expected).abs().max() > 1e-3  # the reference reaches the output through the VACE context
    assert ours.flops(latents.shape, conditions) == ours.flops(
        (2, C, 3, 6, 4), conditions.replace(vace_reference=None, reference_latents=torch.zeros(2, C + EXTRA, 1, 6, 4))
    )


def test_without_a_vace_input_the_branch_adds_nothing(pair):
    ours, theirs = pair
    latents, timestep, conditions = inputs()
    conditions = conditions.replace(vace_context=None)
    with torch.no_grad():
        torch.testing.assert_close(
            theirs(latents, timestep, conditions), ours(latents, timestep, conditions), atol=TOL, rtol=TOL
        )


def test_weights_convert_both_ways(pair):
    ours, theirs = pair
    native = to_native_names(theirs.transformer.state_dict(), "diffusers")
    assert native.keys() == ours.state_dict().keys()
    assert all(torch.equal(native[k], v) for k, v in ours.state_dict().items())
    with pytest.raises(ValueError, match=r"'blocks.0.self_attn.gate'.*no diffusers counterpart"):
        to_diffusers_names(WanDiT(**SHAPE, zero_init_gates=True).state_dict())


def test_kinds_it_lacks_are_refused_at_build_and_call_time(pair, tmp_path):
    _, theirs = pair
    assert theirs.accepts == {"context", "channels", "vace", "reference", "vace_reference"}
    latents, timestep, conditions = inputs()
    with pytest.raises(ValueError, match=r"DiffusersWanVACE does not accept \['residual'\] inputs"):
        theirs(latents, timestep, conditions.replace(token_residual=torch.zeros(2, 18, 24)))
    full_method = tmp_path / "full_method_on_diffusers.yaml"  # the default adapters, hand prior and captions included
    full_method.write_text("defaults:\n  - /default\n  - model@model.backbone: tiny_vace_diffusers\n")
    default = prepare_config(full_method, ["model.conditioning.adapters.actions.k=4"])  # k: the A-RoPE stride it lacks
    with pytest.raises(Exception, match=r"adapter 'hands' \(HandPriorAdapter\) gives \['residual'\].*DiffusersWanVACE"):
        instantiate(default.model, "model")


def test_from_pretrained_widens_the_patch_embedding_with_zero_channels(pair, tmp_path):
    ours, theirs = pair
    narrow = DiffusersWanVACE(**{**SHAPE, "in_channels": C}).eval()
    state = {k: v for k, v in to_diffusers_names(ours.state_dict()).items() if k != "patch_embedding.weight"}
    state["patch_embedding.weight"] = ours.patch_embedding.weight[:, :C].detach().clone()
    narrow.transformer.load_state_dict(state, strict=True)
    narrow.transformer.save_pretrained(tmp_path / "transformer")
    wide = DiffusersWanVACE.from_pretrained(tmp_path, in_channels=C + EXTRA, out_channels=C, dim=24).eval()
    assert wide.in_channels == C + EXTRA and not wide.transformer.patch_embedding.weight[:, C:].any()
    latents, timestep, conditions = inputs(refs=0)
    with torch.no_grad():
        widened = wide(latents, timestep, conditions)
        plain = narrow(latents, timestep, conditions.replace(channels=None))
    torch.testing.assert_close(widened, plain, atol=TOL, rtol=TOL)  # new channels start as a no-op
    with pytest.raises(ValueError, match=r"num_layers=4 differ from the checkpoint's architecture \(num_layers=3\)"):
        DiffusersWanVACE.from_pretrained(tmp_path, num_layers=4)


def test_the_diffusers_experiment_counts_flops_like_wan_dit():
    cfg = prepare_config(CONFIG_ROOT / "experiment" / "diffusers_backbone.yaml")
    module = instantiate(cfg.model, "model")
    assert isinstance(module.backbone, DiffusersWanVACE) and module.backbone.in_channels == 16
    wan = WanDiT(
        in_channels=16,
        out_channels=16,
        dim=64,
        ffn_dim=128,
        num_layers=2,
        num_heads=4,
        text_dim=64,
        freq_dim=64,
        vace_layers=[0, 1],
        vace_in_channels=48,
    )
    conditions = BackboneInputs(torch.zeros(1, 7, 64), vace_context=torch.zeros(1, 48, 5, 12, 16))
    assert module.backbone.flops((1, 16, 5, 12, 16), conditions) == wan.flops((1, 16, 5, 12, 16), conditions) > 0
