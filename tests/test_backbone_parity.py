"""WanDiT equals diffusers' WanTransformer3DModel / WanVACETransformer3DModel with the same weights (float32)."""

from __future__ import annotations

import pytest
import torch
from diffusers import WanTransformer3DModel, WanVACETransformer3DModel

from itryon.models import BackboneInputs, WanDiT
from itryon.models.loading import to_native_names

HEADS, HEAD_DIM = 2, 12
SHAPE = dict(in_channels=4, out_channels=4, text_dim=16, freq_dim=32, ffn_dim=40, rope_max_seq_len=64)
TOL = 1e-5


def _randomise(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)


def _pair(num_layers: int = 3, vace_layers: list[int] | None = None, seed: int = 0):
    common = dict(
        patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, num_layers=num_layers, **SHAPE
    )
    if vace_layers is None:
        reference = WanTransformer3DModel(**common).eval()
    else:
        reference = WanVACETransformer3DModel(**common, vace_layers=vace_layers, vace_in_channels=6).eval()
    _randomise(reference, seed)
    ours = WanDiT(
        dim=HEADS * HEAD_DIM,
        num_heads=HEADS,
        num_layers=num_layers,
        vace_layers=vace_layers,
        vace_in_channels=6,
        **SHAPE,
    ).eval()
    ours.load_state_dict(to_native_names(reference.state_dict(), "diffusers"), strict=True)
    return reference, ours


def _inputs(batch: int, frames: int, height: int, width: int, text_len: int, real_len: int | None, seed: int):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, 4, frames, height, width, generator=generator)
    timestep = torch.rand(batch, generator=generator) * 1000
    context = torch.randn(batch, text_len, 16, generator=generator)
    if real_len is not None:
        context[:, real_len:] = 0  # Wan-style zero padding beyond the caption's length
    return latents, timestep, context


# (batch, frames, height, width, text_len, real text length)
SHAPES = [
    (2, 3, 6, 10, 7, None),
    (1, 1, 4, 4, 5, None),
    (3, 5, 10, 6, 12, 4),
    (2, 2, 14, 8, 9, 1),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])))
def test_t2v_matches_diffusers(shape):
    reference, ours = _pair(seed=sum(shape[:5]))
    latents, timestep, context = _inputs(*shape, seed=1)
    with torch.no_grad():
        expected = reference(latents, timestep, context, return_dict=False)[0]
        actual = ours(latents, timestep, BackboneInputs(context))
    assert actual.shape == latents.shape
    assert expected.abs().max() > 1.0  # a meaningful, non-degenerate output
    torch.testing.assert_close(actual, expected, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=lambda s: "x".join(map(str, s[:5])))
def test_vace_matches_diffusers(shape):
    reference, ours = _pair(num_layers=4, vace_layers=[0, 2], seed=7)
    latents, timestep, context = _inputs(*shape, seed=2)
    control = torch.randn(shape[0], 6, *latents.shape[2:], generator=torch.Generator().manual_seed(3))
    scale = torch.tensor([0.6, 1.4])
    with torch.no_grad():
        expected = reference(
            latents,
            timestep,
            context,
            control_hidden_states=control,
            control_hidden_states_scale=scale,
            return_dict=False,
        )[0]
        actual = ours(latents, timestep, BackboneInputs(context, vace_context=control, vace_context_scale=scale))
        without_hints = ours(latents, timestep, BackboneInputs(context))
    torch.testing.assert_close(actual, expected, atol=TOL, rtol=TOL)
    assert (actual - without_hints).abs().max() > 1e-2  # the context branch is active


def test_vace_scalar_scale_equals_per_layer_scale():
    _, ours = _pair(num_layers=4, vace_layers=[0, 2], seed=4)
    latents, timestep, context = _inputs(1, 2, 4, 6, 5, None, seed=5)
    control = torch.randn(1, 6, 2, 4, 6)
    with torch.no_grad():
        scalar = ours(latents, timestep, BackboneInputs(context, vace_context=control, vace_context_scale=0.5))
        vector = ours(
            latents,
            timestep,
            BackboneInputs(context, vace_context=control, vace_context_scale=torch.tensor([0.5, 0.5])),
        )
    torch.testing.assert_close(scalar, vector, atol=0, rtol=0)
    with pytest.raises(ValueError, match="one per VACE layer"):
        ours(latents, timestep, BackboneInputs(context, vace_context=control, vace_context_scale=torch.ones(3)))


def test_reference_frames_equal_prepended_latents():
    """Reference frames are Wan-VACE's prepended frames: same as running the longer clip and cropping."""
    reference, ours = _pair(num_layers=4, vace_layers=[0, 2], seed=9)
    latents, timestep, context = _inputs(2, 3, 6, 4, 5, None, seed=6)
    refs = torch.randn(2, 4, 1, 6, 4)
    control = torch.randn(2, 6, 4, 6, 4)  # covers the reference frame and the 3 video frames
    with torch.no_grad():
        full = reference(
            torch.cat([refs, latents], dim=2), timestep, context, control_hidden_states=control, return_dict=False
        )[0]
        actual = ours(latents, timestep, BackboneInputs(context, reference_latents=refs, vace_context=control))
    torch.testing.assert_close(actual, full[:, :, 1:], atol=TOL, rtol=TOL)


def test_reference_context_frames_follow_wan_vace_layout():
    """With context for the video frames only, the references' context is [reference latent, zeros]."""
    _, ours = _pair(num_layers=4, vace_layers=[0, 2], seed=11)
    latents, timestep, context = _inputs(1, 2, 4, 4, 5, None, seed=8)
    refs = torch.randn(1, 4, 1, 4, 4)
    control = torch.randn(1, 6, 2, 4, 4)
    ref_context = torch.cat([refs, torch.zeros(1, 2, 1, 4, 4)], dim=1)
    with torch.no_grad():
        implicit = ours(latents, timestep, BackboneInputs(context, reference_latents=refs, vace_context=control))
        explicit = ours(
            latents,
            timestep,
            BackboneInputs(context, reference_latents=refs, vace_context=torch.cat([ref_context, control], dim=2)),
        )
    torch.testing.assert_close(implicit, explicit, atol=0, rtol=0)
