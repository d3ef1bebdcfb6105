"""WanDiT behaviour beyond diffusers parity: RoPE numerics, attention kernels and masks, condition hooks,
zero-initialised injection paths, gradient checkpointing, autocast, compile, FLOP count."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from itryon.models import BackboneInputs, WanDiT, dit_forward_flops
from itryon.models.attention import WanAttention, attention, check_backend
from itryon.models.rope import RotaryEmbedding3D, apply_rotary, grid_positions, rope_axis_dims

TINY = dict(in_channels=4, out_channels=4, dim=24, ffn_dim=40, num_layers=2, num_heads=2, text_dim=16, freq_dim=32)


def _model(seed: int = 0, **overrides) -> WanDiT:
    torch.manual_seed(seed)
    model = WanDiT(**{**TINY, **overrides}).eval()
    with torch.no_grad():
        model.head.proj.weight.normal_(0, 0.3)  # a fresh head is zero; make outputs informative
    return model


def _inputs(batch=2, frames=3, height=4, width=6, text_len=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 4, frames, height, width, generator=g),
        torch.rand(batch, generator=g) * 1000,
        torch.randn(batch, text_len, 16, generator=g),
    )


# ---------------------------------------------------------------- RoPE


def test_rope_axis_split_matches_wan():
    assert rope_axis_dims(128) == (44, 42, 42)  # Wan2.1 1.3B / 14B head_dim
    assert rope_axis_dims(12) == (4, 4, 4)


def test_rope_against_float64_complex_reference():
    head_dim = 24
    rope = RotaryEmbedding3D(head_dim)
    positions = torch.tensor([[0, 0, 0], [3, 1, 7], [9, 30, 2], [100, 5, 999]])
    x = torch.randn(2, 3, 4, head_dim, dtype=torch.float64)
    cos, sin = rope(positions)
    actual = apply_rotary(x, cos, sin)
    expected = torch.empty_like(x)
    offset = 0
    for axis, d in enumerate(rope_axis_dims(head_dim)):
        freqs = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
        angle = positions[:, axis, None].double() * freqs  # (N, d/2)
        pairs = torch.view_as_complex(x[..., offset : offset + d].reshape(*x.shape[:-1], d // 2, 2).contiguous())
        rotated = pairs * torch.polar(torch.ones_like(angle), angle)
        expected[..., offset : offset + d] = torch.view_as_real(rotated).flatten(-2)
        offset += d
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-6)  # float32 tables


def test_rope_rejects_positions_beyond_the_table():
    with pytest.raises(ValueError, match=r"rope_max_seq_len\), got range \[0, 16\]"):
        RotaryEmbedding3D(24, max_position=16)(torch.tensor([[0, 0, 16]]))


# ---------------------------------------------------------------- attention kernels and masks


def _reference_attention(q, k, v, mask):
    scores = (q.double() @ k.double().transpose(-1, -2)) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(~mask[:, None], float("-inf"))
    out = scores.softmax(-1).nan_to_num(0.0) @ v.double()  # an all-masked row attends nothing
    return out.float()


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_attention_backends_match_reference_with_masks(backend):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    mask = torch.rand(2, 5, 5, generator=g) > 0.4
    mask[0, 2] = False  # a query allowed to attend nothing
    out = attention(q, k, v, mask, backend)
    torch.testing.assert_close(out, _reference_attention(q, k, v, mask), atol=1e-5, rtol=1e-5)
    assert torch.all(out[0, :, 2] == 0)
    unmasked = attention(q, k, v, None, backend)
    torch.testing.assert_close(unmasked, _reference_attention(q, k, v, torch.ones(2, 5, 5, dtype=torch.bool)))


def test_backend_errors_list_choices():
    with pytest.raises(ValueError, match=r"one of \('sdpa', 'xformers', 'math'\), got 'flash'"):
        check_backend("flash")
    if importlib.util.find_spec("xformers") is None:
        with pytest.raises(ImportError, match="needs the xformers package"):
            WanDiT(**TINY, attention_backend="xformers")


def test_model_backends_agree():
    model = _model()
    latents, timestep, context = _inputs()
    with torch.no_grad():
        sdpa = model(latents, timestep, BackboneInputs(context))
        model.set_attention_backend("math")
        math = model(latents, timestep, BackboneInputs(context))
    torch.testing.assert_close(sdpa, math, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- condition hooks


def test_fresh_model_outputs_zero_and_vace_branch_starts_as_no_op():
    torch.manual_seed(0)
    fresh = WanDiT(**TINY, vace_layers=[0, 1], vace_in_channels=6)
    latents, timestep, context = _inputs()
    assert torch.count_nonzero(fresh(latents, timestep, BackboneInputs(context))) == 0  # zero-initialised output head
    with torch.no_grad():
        fresh.head.proj.weight.normal_(0, 0.3)
        plain = fresh(latents, timestep, BackboneInputs(context))
        with_context = fresh(latents, timestep, BackboneInputs(context, vace_context=torch.randn(2, 6, 3, 4, 6)))
        extra = dict(extra_tokens=torch.randn(2, 3, 24), extra_token_positions=torch.tensor([[3, 0, 0]] * 3))
        plain_extra = fresh(latents, timestep, BackboneInputs(context, **extra))
        with_context_extra = fresh(
            latents, timestep, BackboneInputs(context, vace_context=torch.randn(2, 6, 3, 4, 6), **extra)
        )
    assert plain.abs().max() > 0.1
    torch.testing.assert_close(with_context, plain, atol=0, rtol=0)
    torch.testing.assert_close(with_context_extra, plain_extra, atol=0, rtol=0)


def test_token_residual_adds_to_video_tokens_only():
    model = _model()
    latents, timestep, context = _inputs()
    refs = torch.randn(2, 4, 1, 4, 6)
    with torch.no_grad():
        base = model(latents, timestep, BackboneInputs(context, reference_latents=refs))
        zero = model(
            latents,
            timestep,
            BackboneInputs(context, reference_latents=refs, token_residual=torch.zeros(2, 3 * 2 * 3, 24)),
        )
        # a residual equal to the embedding of a latent change is that latent change
        delta = torch.randn(2, 4, 3, 4, 6)
        residual = model.patch_embedding(delta).flatten(2).transpose(1, 2) - model.patch_embedding.bias
        moved = model(latents, timestep, BackboneInputs(context, reference_latents=refs, token_residual=residual))
        shifted = model(latents + delta, timestep, BackboneInputs(context, reference_latents=refs))
    torch.testing.assert_close(zero, base, atol=0, rtol=0)
    torch.testing.assert_close(moved, shifted, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"token_residual must have shape \(2, 18, 24\), got \(2, 24, 24\)"):
        model(latents, timestep, BackboneInputs(context, token_residual=torch.zeros(2, 24, 24)))


def test_extra_tokens_are_read_and_dropped():
    model = _model()
    latents, timestep, context = _inputs()
    tokens = torch.randn(2, 2, 24, requires_grad=True)
    positions = torch.tensor([[3, 0, 0], [3, 1, 2]])
    out = model(latents, timestep, BackboneInputs(context, extra_tokens=tokens, extra_token_positions=positions))
    assert out.shape == latents.shape
    out.square().sum().backward()
    assert tokens.grad.abs().sum() > 0  # video tokens attend to them
    with torch.no_grad():  # tokens are a set: swapping two tokens with their positions changes nothing
        swapped = model(
            latents,
            timestep,
            BackboneInputs(context, extra_tokens=tokens.flip(1), extra_token_positions=positions.flip(0)),
        )
    torch.testing.assert_close(swapped, out.detach(), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="extra_tokens need extra_token_positions"):
        model(latents, timestep, BackboneInputs(context, extra_tokens=tokens))


class RecordingRope(torch.nn.Module):
    """Records the hook's inputs; rotates nothing (identity) or scales queries of one frame."""

    def __init__(self, scale_frame: int | None = None):
        super().__init__()
        self.calls = []
        self.scale_frame = scale_frame

    def forward(self, q, k, query_frames, key_positions):
        self.calls.append((q.shape, k.shape, query_frames.clone(), key_positions.clone()))
        if self.scale_frame is not None:
            q = q * torch.where(query_frames == self.scale_frame, 3.0, 1.0)[:, None]
        return q, k


def test_cross_attention_rope_hook_receives_frames_and_positions():
    hook = RecordingRope()
    model = _model(cross_attention_rope=hook)
    latents, timestep, context = _inputs(frames=3, height=4, width=6)  # 3 latent frames of 2 x 3 tokens
    positions = torch.tensor([[float("nan"), 0.0, 0.0, 4.0, 8.0]] * 2)
    refs = torch.randn(2, 4, 1, 4, 6)
    with torch.no_grad():
        plain = model(latents, timestep, BackboneInputs(context, reference_latents=refs))
        assert hook.calls == []  # no positions, no hook
        hooked = model(
            latents,
            timestep,
            BackboneInputs(
                context,
                reference_latents=refs,
                context_positions=positions,
                extra_tokens=torch.randn(2, 1, 24),
                extra_token_positions=torch.tensor([[4, 0, 0]]),
            ),
        )
    assert len(hook.calls) == 2  # once per block
    q_shape, k_shape, frames, keys = hook.calls[0]
    assert q_shape == (2, 2, 6 + 18 + 1, 12) and k_shape == (2, 2, 5, 12)  # (B, heads, N, head_dim)
    assert frames.tolist() == [-1] * 6 + [0] * 6 + [1] * 6 + [2] * 6 + [-1]
    torch.testing.assert_close(keys, positions, equal_nan=True)
    assert hooked.shape == plain.shape

    scaling = _model(cross_attention_rope=RecordingRope(scale_frame=1))
    identity = _model(cross_attention_rope=RecordingRope())
    with torch.no_grad():
        a = identity(latents, timestep, BackboneInputs(context, context_positions=positions))
        b = scaling(latents, timestep, BackboneInputs(context, context_positions=positions))
        no_positions = identity(latents, timestep, BackboneInputs(context))
    torch.testing.assert_close(a, no_positions, atol=0, rtol=0)  # an identity hook is plain cross-attention
    assert (a - b).abs().max() > 1e-3


def test_context_mask_hides_text_tokens():
    model = _model()
    latents, timestep, context = _inputs(text_len=5)
    with torch.no_grad():
        base = model(latents, timestep, BackboneInputs(context))
        all_true = model(latents, timestep, BackboneInputs(context, context_mask=torch.ones(2, 3, 5, dtype=torch.bool)))
        mask = torch.ones(2, 3, 5, dtype=torch.bool)
        mask[:, :, 3] = False  # no frame may read token 3: the same as not having it
        hidden = model(latents, timestep, BackboneInputs(context, context_mask=mask))
        removed = model(latents, timestep, BackboneInputs(context[:, [0, 1, 2, 4]]))
        mask[:, 1] = False  # frame 1 reads nothing: no NaN
        empty = model(latents, timestep, BackboneInputs(context, context_mask=mask))
    torch.testing.assert_close(all_true, base, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(hidden, removed, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(empty).all()
    with pytest.raises(ValueError, match=r"context_mask must have shape \(2, 3, 5\)"):
        model(latents, timestep, BackboneInputs(context, context_mask=torch.ones(2, 4, 5, dtype=torch.bool)))


def test_cross_attention_module_masks_per_query():
    torch.manual_seed(0)
    attn = WanAttention(24, 2)
    x, ctx = torch.randn(1, 4, 24), torch.randn(1, 3, 24)
    mask = torch.tensor([[[True, False, False], [True, True, True], [False, False, False], [False, True, True]]])
    out = attn(x, context=ctx, mask=mask)
    for row in range(4):
        keep = mask[0, row].nonzero().flatten()
        if len(keep) == 0:
            torch.testing.assert_close(out[0, row], attn.o.bias)  # attends nothing: only the output bias
            continue
        single = attn(x[:, row : row + 1], context=ctx[:, keep])
        torch.testing.assert_close(out[0, row], single[0, 0], atol=1e-6, rtol=1e-6)


def test_input_validation_messages():
    model = _model()
    latents, timestep, context = _inputs()
    with pytest.raises(ValueError, match=r"latents must have shape \(2, 4, \*, \*, \*\), got \(2, 5, 3, 4, 6\)"):
        model(torch.zeros(2, 5, 3, 4, 6), timestep, BackboneInputs(context))
    with pytest.raises(ValueError, match="must be divisible by patch_size"):
        model(torch.zeros(2, 4, 3, 5, 6), timestep, BackboneInputs(context))
    with pytest.raises(ValueError, match=r"WanDiT does not accept \['vace'\] inputs \(BackboneInputs.vace_context\)"):
        model(latents, timestep, BackboneInputs(context, vace_context=torch.zeros(2, 96, 3, 4, 6)))
    with pytest.raises(ValueError, match=r"vace_layers must be strictly increasing block indices in \[0, 2\)"):
        WanDiT(**TINY, vace_layers=[0, 2])


# ---------------------------------------------------------------- training features


def test_gradient_checkpointing_gives_same_loss_and_grads():
    latents, timestep, context = _inputs()
    control = torch.randn(2, 6, 3, 4, 6)
    results = []
    for checkpointing in (False, True):
        model = _model(seed=3, vace_layers=[0, 1], vace_in_channels=6, gradient_checkpointing=checkpointing).train()
        with torch.no_grad():
            for block in model.vace_blocks:
                block.after_proj.weight.normal_(0, 0.3)
        loss = model(latents, timestep, BackboneInputs(context, vace_context=control)).square().mean()
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_b, loss_a, atol=1e-5, rtol=1e-5)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 40
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], atol=1e-5, rtol=1e-5, msg=name)


def test_bf16_autocast_close_to_float32():
    model = _model()
    latents, timestep, context = _inputs()
    with torch.no_grad():
        reference = model(latents, timestep, BackboneInputs(context))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(latents, timestep, BackboneInputs(context))
    assert low.dtype == torch.bfloat16
    error = (low.float() - reference).norm() / reference.norm()
    assert error < 0.03, error


def test_model_in_bfloat16_keeps_rope_exact():
    model = _model().to(torch.bfloat16)
    assert model.rope.freqs.dtype == torch.float64
    latents, timestep, context = _inputs()
    out = model(latents.bfloat16(), timestep, BackboneInputs(context.bfloat16()))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


@pytest.mark.slow
def test_compiled_blocks_match_eager():
    model = _model()
    latents, timestep, context = _inputs()
    with torch.no_grad():
        eager = model(latents, timestep, BackboneInputs(context))
        model.parallelize(compile=True)
        compiled = model(latents, timestep, BackboneInputs(context))
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- FLOPs


@pytest.mark.parametrize("vace", [False, True])
def test_flop_count_matches_torch_flop_counter(vace):
    extra = dict(vace_layers=[0, 1], vace_in_channels=6) if vace else {}
    model = _model(**extra, attention_backend="math")  # the counter has no formula for the CPU SDPA kernel
    latents, timestep, context = _inputs(batch=2, frames=3, height=4, width=6, text_len=5)
    kwargs = dict(vace_context=torch.randn(2, 6, 3, 4, 6)) if vace else {}
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(latents, timestep, BackboneInputs(context, **kwargs))
    assert dit_forward_flops(model, latents.shape, text_len=5) == counter.get_total_flops()
    config = {**TINY, **extra, "patch_size": [1, 2, 2]}
    assert dit_forward_flops(config, latents.shape, 5) == counter.get_total_flops()


def test_flop_count_by_hand_for_one_block():
    config = dict(TINY, num_layers=1, patch_size=(1, 1, 1), in_channels=1, out_channels=1, text_dim=24, freq_dim=2)
    n, text, d, f = 6, 2, 24, 40  # tokens (1 x 2 x 3), text tokens, dim, ffn
    block = 8 * n * d * d + 4 * n * n * d + 4 * n * d * d + 4 * text * d * d + 4 * n * text * d + 4 * n * d * f
    embed = 2 * n * 1 * d + 2 * text * (d * d + d * d) + 2 * (2 * d + d * d + 6 * d * d)
    head = 2 * n * d * 1
    assert dit_forward_flops(config, (1, 1, 2, 3), text) == block + embed + head
    assert len(grid_positions(1, 2, 3)) == n
