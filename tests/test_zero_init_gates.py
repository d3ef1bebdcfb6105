"""Zero-initialised gated attention (``WanDiT(zero_init_gates=True)``): every adapter starts as an exact no-op.

Covers, for every adapter of the method, that adding it to a gated backbone leaves the output unchanged at init and
that one optimiser step on the new parameters makes it act; the two-softmax kernels against float64 / plain-path
references (both CPU backends); a fully masked gated row; gates off = today's model; loading with new gates.
The global caption is the base context of every stack (the stack requires a context adapter), so it has no
"added" case.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from diffusers import WanTransformer3DModel, WanVACETransformer3DModel

from itryon.conditioning import (
    ActionCaptionAdapter,
    ConditioningStack,
    GarmentAdapter,
    GlobalCaptionAdapter,
    HandPriorAdapter,
    PersonAdapter,
    PoseAdapter,
)
from itryon.conditioning.base import ConditioningAdapter
from itryon.models import BackboneInputs, ByteTextEncoder, PixelVAE, WanDiT
from itryon.models.action_rope import ActionRoPE
from itryon.models.attention import CrossAttentionInputs, GatedContext
from itryon.models.gated_attention import GatedWanAttention
from itryon.models.loading import load_native_state

B, T, H, W = 2, 9, 8, 8  # PixelVAE(2, 4): latents (B, 48, 3, 4, 4); tokens (3, 2, 2)
C, S, TC, DIM, TEXT = 48, 2, 4, 32, 32
LATENT = (B, C, 3, 4, 4)
VAE = PixelVAE(spatial_compression=S, temporal_compression=TC)
VACE = dict(vace_layers=[0, 1], vace_in_channels=2 * C + S * S)
AROPE = dict(cross_attention_rope=ActionRoPE(DIM // 2, k=4))


ACTIONS = [[{"start": 2, "end": 9, "text": "lifts the hem"}], [{"start": 0, "end": 3, "text": "waves"}]]


@pytest.fixture
def batch(make_batch) -> dict:
    """No hand in frames 0..4; an action caption in each sample."""
    return make_batch((B, T, H, W), actions=ACTIONS)


def caption() -> GlobalCaptionAdapter:
    torch.manual_seed(0)
    return GlobalCaptionAdapter(ByteTextEncoder(TEXT, max_length=32), drop_prob=0.0)


def backbone(**kwargs) -> WanDiT:
    """A gated tiny backbone standing in for loaded weights (a trained head is not zero)."""
    torch.manual_seed(0)
    args = dict(
        in_channels=C,
        out_channels=C,
        dim=DIM,
        ffn_dim=64,
        num_layers=2,
        num_heads=2,
        text_dim=TEXT,
        freq_dim=32,
        zero_init_gates=True,
    )
    args.update(kwargs)
    model = WanDiT(**args)
    with torch.no_grad():
        model.head.proj.weight.normal_(std=0.05, generator=torch.Generator().manual_seed(1))
    return model.eval()


def stack_of(adapters: dict) -> ConditioningStack:
    return ConditioningStack({"caption": caption(), **adapters}).eval()  # eval: no random CFG dropout


def run(stack: ConditioningStack, model: WanDiT, batch: dict, latents: torch.Tensor) -> torch.Tensor:
    cond = stack(batch, vae=VAE, latent_shape=latents.shape)
    return model(latents, torch.tensor([250.0, 750.0]), cond.inputs)


def gates(model: WanDiT, kind: str) -> list[torch.nn.Parameter]:
    return [p for n, p in model.named_parameters() if n.endswith(f"{kind}.gate")]


# ----------------------------------------------------------------------------------------------------
# every adapter: an exact no-op at init, acting after one optimiser step

CASES = {
    # name: (adapter to add, backbone kwargs, adapters present in both stacks, gate that must learn, exact)
    "hands": (lambda: HandPriorAdapter(DIM, (1, 2, 2), S, TC, hidden_dim=16, num_heads=2), {}, {}, None, True),
    "pose_residual": (lambda: PoseAdapter("residual", C, DIM, (1, 2, 2), S, TC, hidden_dim=16), {}, {}, None, True),
    "person_vace": (lambda: PersonAdapter("vace", C, S), VACE, {}, None, True),
    "pose_vace": (lambda: PoseAdapter("vace", C), dict(vace_layers=[1], vace_in_channels=C), {}, None, True),
    # the reference frame shifts the video's RoPE time indices by R: relative positions, equal up to rounding
    "garment_reference": (lambda: GarmentAdapter("reference", C), {}, {}, "self_attn", False),
    "garment_reference_vace": (
        lambda: GarmentAdapter("reference", C),
        VACE,
        {"person": lambda: PersonAdapter("vace", C, S)},
        "self_attn",
        False,
    ),
    "garment_tokens": (lambda: GarmentAdapter("tokens", C, DIM, (1, 2, 2)), {}, {}, "self_attn", True),
    "garment_tokens_vace": (
        lambda: GarmentAdapter("tokens", C, DIM, (1, 2, 2)),
        VACE,
        {"person": lambda: PersonAdapter("vace", C, S)},
        "self_attn",
        True,
    ),
    "actions_arope_segment": (lambda: ActionCaptionAdapter(k=4), AROPE, {}, "cross_attn", True),
    "actions_arope_center": (lambda: ActionCaptionAdapter(k=4, positions="center"), AROPE, {}, "cross_attn", True),
    "actions_arope_hard_mask": (lambda: ActionCaptionAdapter(k=4, hard_mask=True), AROPE, {}, "cross_attn", True),
    "actions_no_arope": (lambda: ActionCaptionAdapter(k=4, positions="none"), {}, {}, "cross_attn", True),
    "actions_no_arope_hard_mask": (
        lambda: ActionCaptionAdapter(k=4, positions="none", hard_mask=True),
        {},
        {},
        "cross_attn",
        True,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_adding_an_adapter_to_a_gated_backbone_is_a_no_op_then_acts_after_one_step(name, batch):
    adapter, model_kwargs, base, learning_gate, exact = CASES[name]
    latents = torch.randn(LATENT)
    model = backbone(**model_kwargs)
    without = stack_of({k: v() for k, v in base.items()})
    with_it = stack_of({**{k: v() for k, v in base.items()}, "new": adapter()})
    with torch.no_grad():
        reference = run(without, model, batch, latents)
        added = run(with_it, model, batch, latents)
    if exact:
        assert torch.equal(added, reference)
    else:
        torch.testing.assert_close(added, reference, atol=1e-6, rtol=0)

    # one step on the new parameters only: gates, the VACE branch, the adapter's trainable parts
    new = [p for n, p in model.named_parameters() if n.endswith(".gate") or n.startswith("vace_")]
    new += [p for p in with_it.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(new, lr=5e-2)
    loss = F.mse_loss(
        run(with_it, model, batch, latents), torch.randn(LATENT, generator=torch.Generator().manual_seed(2))
    )
    loss.backward()
    if learning_gate is not None:
        # d tanh(g) X / dg = X at g = 0: every head of every main block learns (VACE-branch gates follow once the
        # zero-initialised hint projections have moved)
        grads = torch.stack(
            [
                p.grad
                for n, p in model.named_parameters()
                if n.startswith("blocks.") and n.endswith(f"{learning_gate}.gate")
            ]
        )  # (layers, heads)
        assert grads.abs().min() > 0
    optimizer.step()
    with torch.no_grad():
        after_with, after_without = run(with_it, model, batch, latents), run(without, model, batch, latents)
    assert (after_with - after_without).abs().max() > 1e-5  # rounding of the reference case is ~2e-7


def test_person_channels_on_a_widened_gated_backbone_is_a_no_op_then_acts(batch):
    latents = torch.randn(LATENT)
    person = PersonAdapter("channels", C, S)
    narrow = backbone()
    wide = WanDiT(
        in_channels=C + person.out_channels,
        out_channels=C,
        dim=DIM,
        ffn_dim=64,
        num_layers=2,
        num_heads=2,
        text_dim=TEXT,
        freq_dim=32,
        zero_init_gates=True,
    ).eval()
    assert load_native_state(wide, dict(narrow.state_dict()), extra_in_channels=person.out_channels) == []
    with_it = stack_of({"person": person})
    with torch.no_grad():
        reference = run(stack_of({}), narrow, batch, latents)
        assert torch.equal(run(with_it, wide, batch, latents), reference)
    weight = wide.patch_embedding.weight
    optimizer = torch.optim.Adam([weight], lr=1e-2)
    F.mse_loss(run(with_it, wide, batch, latents), torch.randn(LATENT)).backward()
    assert weight.grad[:, C:].abs().sum() > 0
    weight.grad[:, :C] = 0  # only the new input channels move
    optimizer.step()
    with torch.no_grad():
        assert (run(with_it, wide, batch, latents) - reference).abs().max() > 1e-4


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_the_no_op_holds_on_both_cpu_backends_with_everything_added(backend, batch):
    latents = torch.randn(LATENT)
    model = backbone(attention_backend=backend, **VACE, **AROPE)
    base = stack_of({"person": PersonAdapter("vace", C, S)})
    full = stack_of(
        {
            "person": PersonAdapter("vace", C, S),
            "garment": GarmentAdapter("reference", C),
            "actions": ActionCaptionAdapter(k=4, hard_mask=True),
            "hands": HandPriorAdapter(DIM, (1, 2, 2), S, TC, hidden_dim=16, num_heads=2),
        }
    )
    with torch.no_grad():
        torch.testing.assert_close(
            run(full, model, batch, latents), run(base, model, batch, latents), atol=1e-6, rtol=0
        )


def test_reference_tokens_reach_video_tokens_only_through_the_gates(batch):
    """Two blocks plus the VACE branch: with self gates at 0, whatever the reference and the cross gates hold, the
    reference frame has no effect; a nonzero self gate lets it in."""
    latents = torch.randn(LATENT)
    model = backbone(**VACE, **AROPE)
    with torch.no_grad():
        for gate in gates(model, "cross_attn"):
            gate.fill_(0.5)
    stack = stack_of(
        {
            "person": PersonAdapter("vace", C, S),
            "garment": GarmentAdapter("reference", C),
            "actions": ActionCaptionAdapter(k=4),
        }
    )
    other = dict(batch, garment=-batch["garment"])
    with torch.no_grad():
        first, second = run(stack, model, batch, latents), run(stack, model, other, latents)
        torch.testing.assert_close(first, second, atol=1e-6, rtol=0)
        gates(model, "self_attn")[1].fill_(0.5)  # the last block only
        assert (run(stack, model, batch, latents) - run(stack, model, other, latents)).abs().max() > 1e-4


def test_gradient_checkpointing_gives_the_same_gate_gradients(batch):
    latents = torch.randn(LATENT)
    stack = stack_of({"garment": GarmentAdapter("tokens", C, DIM, (1, 2, 2)), "actions": ActionCaptionAdapter(k=4)})
    grads = []
    for checkpointing in (False, True):
        model = backbone(gradient_checkpointing=checkpointing, **AROPE)
        run(stack, model, batch, latents).square().mean().backward()
        grads.append(torch.cat([g.grad for g in gates(model, "")]))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------
# the two-softmax kernels


def _softmax_attention(q, k, v, mask=None):  # float64 reference on (B, H, N, D)
    scores = q.double() @ k.double().transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v.double()


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_gated_self_attention_matches_a_float64_two_softmax_reference(backend):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 9, 4, generator=g) for _ in range(3))  # (B, H, N, D): 2 reference, 5 video, 2 extra
    attn = GatedWanAttention(8, 2, backend=backend)
    with torch.no_grad():
        attn.gate.copy_(torch.tensor([0.3, -0.7]))
    out = attn.gated_self_attention(q, k, v, (2, 7)).transpose(1, 2)  # (B, H, N, D)
    side = torch.tensor([0, 1, 7, 8])
    video = _softmax_attention(q[:, :, 2:7], k[:, :, 2:7], v[:, :, 2:7])
    video = video + torch.tanh(torch.tensor([0.3, -0.7])).double().view(1, 2, 1, 1) * _softmax_attention(
        q[:, :, 2:7], k[:, :, side], v[:, :, side]
    )
    torch.testing.assert_close(out[:, :, 2:7].double(), video, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[:, :, side].double(), _softmax_attention(q[:, :, side], k, v), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", ["sdpa", "math"])
def test_gated_cross_attention_is_the_base_plus_the_gated_branch(backend):
    """With ``o`` the identity: A_base + tanh(gate) * A_gated, each from the plain (ungated) path, with A-RoPE and masks
    on both branches; a query whose gated row is fully masked gets exactly the base output (no NaN, finite grads)."""
    g = torch.Generator().manual_seed(0)
    attn = GatedWanAttention(8, 2, backend=backend)
    rope = ActionRoPE(4, k=4)
    with torch.no_grad():
        attn.gate.copy_(torch.tensor([0.4, -0.2]))
        attn.o.weight.copy_(torch.eye(8))
        attn.o.bias.zero_()
    x = torch.randn(2, 6, 8, generator=g, requires_grad=True)  # (B, N, dim): frames 0, 0, 1, 1, 2, -1
    base, gated = torch.randn(2, 5, 8, generator=g), torch.randn(2, 3, 8, generator=g)
    query_frames = torch.tensor([0, 0, 1, 1, 2, -1])
    base_pos = torch.full((2, 5), float("nan"))
    gated_pos = torch.tensor([[0.0, 4.0, float("nan")], [8.0, 8.0, 4.0]])
    gated_mask = torch.ones(2, 6, 3, dtype=torch.bool)
    gated_mask[0, 2] = False  # a fully masked gated row
    gated_mask[1, :, 0] = False
    base_mask = torch.ones(2, 6, 5, dtype=torch.bool)
    base_mask[1, 3, 1:] = False
    common = dict(cross_rope=rope, query_frames=query_frames)
    inputs = CrossAttentionInputs(
        base, query_frames, base_mask, rope, base_pos, GatedContext(gated, gated_mask, gated_pos)
    )
    out = attn.cross_attention(x, inputs)
    plain_base = attn(x, context=base, mask=base_mask, key_positions=base_pos, **common)
    plain_gated = attn(x, context=gated, mask=gated_mask, key_positions=gated_pos, **common)
    t = torch.tanh(attn.gate.detach()).repeat_interleave(4)  # per channel of the (heads * head_dim) output
    expected = plain_base + plain_gated * t
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(out[0, 2], plain_base[0, 2])  # fully masked gated row: contributes exactly 0
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(attn.gate.grad).all()


# ----------------------------------------------------------------------------------------------------
# gates off: today's model; gated_context from the stack; loading


def test_gates_off_ignore_gated_context_and_gates_on_without_new_tokens_equal_the_plain_model(batch):
    latents = torch.randn(LATENT)
    plain = backbone(zero_init_gates=False, **AROPE)
    gated = backbone(**AROPE)
    assert load_native_state(gated, dict(plain.state_dict())) == sorted(
        n for n, _ in gated.named_parameters() if n.endswith("gate")
    )
    stack = stack_of({"garment": GarmentAdapter("tokens", C, DIM, (1, 2, 2)), "actions": ActionCaptionAdapter(k=4)})
    with torch.no_grad():
        cond = stack(batch, vae=VAE, latent_shape=LATENT)
        assert cond.inputs.context_gated.shape == cond.inputs.context.shape[:2]
        t = torch.tensor([250.0, 750.0])
        ungated = cond.inputs.replace(context_gated=None)
        assert torch.equal(plain(latents, t, cond.inputs), plain(latents, t, ungated))
        # the caption alone: nothing to gate, the gated model is the plain one
        base = stack_of({})(batch, vae=VAE, latent_shape=LATENT)
        assert torch.equal(gated(latents, t, base.inputs), plain(latents, t, base.inputs))
        # the trade-off: without gates the new tokens join the softmax and change the output at once
        assert (plain(latents, t, cond.inputs) - plain(latents, t, base.inputs)).abs().max() > 1e-3


def test_the_stack_marks_gated_context_from_the_adapter_declaration(batch):
    cond = stack_of({"actions": ActionCaptionAdapter(k=4)})(batch, vae=VAE, latent_shape=LATENT)
    caption_len = 32
    assert (
        cond.inputs.context_gated.dtype == torch.bool
        and cond.inputs.context_gated.shape == cond.inputs.context.shape[:2]
    )
    assert not cond.inputs.context_gated[:, :caption_len].any() and cond.inputs.context_gated[:, caption_len:].all()
    ungated = stack_of({"actions": ActionCaptionAdapter(k=4, gated=False)})(batch, vae=VAE, latent_shape=LATENT)
    assert ungated.inputs.context_gated is None and "gated_context" not in ungated.inputs.kinds
    with pytest.raises(ValueError, match="gated=True applies to 'context' outputs only, got kind 'residual'"):
        ConditioningAdapter(("depth",), "residual", trainable=True, drop_prob=0.0, gated=True)
    with pytest.raises(ValueError, match=r"context_gated must have shape \(2, 40\), got \(2, 39\)"):
        inputs = BackboneInputs(torch.randn(2, 40, TEXT), context_gated=torch.ones(2, 39, dtype=torch.bool))
        backbone()(torch.randn(LATENT), torch.zeros(2), inputs)


DIFFUSERS = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=4,
    out_channels=4,
    text_dim=16,
    freq_dim=32,
    ffn_dim=40,
    num_layers=2,
    rope_max_seq_len=64,
)


@pytest.mark.parametrize("vace", [False, True])
def test_from_pretrained_adds_zero_gates_reported_as_newly_initialised(tmp_path, caplog, vace):
    torch.manual_seed(0)
    reference = (
        WanVACETransformer3DModel(**DIFFUSERS, vace_layers=[0, 1], vace_in_channels=6)
        if vace
        else WanTransformer3DModel(**DIFFUSERS)
    )
    with torch.no_grad():
        for param in reference.parameters():
            param.normal_(0, 0.3)
    reference.save_pretrained(tmp_path)
    plain = WanDiT.from_pretrained(tmp_path).eval()
    with caplog.at_level(logging.INFO, logger="itryon.models.loading"):
        gated = WanDiT.from_pretrained(tmp_path, zero_init_gates=True).eval()
    names = [n for n, _ in gated.named_parameters() if n.endswith(".gate")]
    assert len(names) == 2 * (2 + (2 if vace else 0)) and all(
        not p.any() for n, p in gated.named_parameters() if n in names
    )
    assert all(not p.is_meta for p in gated.parameters())
    assert "newly initialised" in caplog.text and all(n in caplog.text for n in names)
    g = torch.Generator().manual_seed(1)
    latents, context = torch.randn(2, 4, 3, 4, 6, generator=g), torch.randn(2, 5, 16, generator=g)
    extra = dict(vace_context=torch.randn(2, 6, 3, 4, 6, generator=g)) if vace else {}
    with torch.no_grad():
        assert torch.equal(
            gated(latents, torch.tensor([3.0, 640.0]), BackboneInputs(context, **extra)),
            plain(latents, torch.tensor([3.0, 640.0]), BackboneInputs(context, **extra)),
        )
