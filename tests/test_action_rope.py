"""A-RoPE: (a) relative positions, (b) hard segment mask, (c) off = plain cross-attention, (d) float64 reference."""

from __future__ import annotations

import math

import pytest
import torch

from itryon.conditioning import ActionCaptionAdapter, ConditionEnv
from itryon.models import BackboneInputs, ByteTextEncoder, PixelVAE, WanDiT
from itryon.models.action_rope import ActionRoPE
from itryon.models.attention import attention


def cross_attention(rope: ActionRoPE | None, q, k, v, frames, positions):
    """Softmax attention in the inputs' dtype, with the kernel's 1/sqrt(q width) scale."""
    if rope is not None:
        q, k = rope(q, k, frames, positions)
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v


def random_qkv(dtype=torch.float64, b=2, h=2, nq=6, length=7, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, n, d, generator=g, dtype=dtype) for n in (nq, length, length))
    return q, k, v


def reference_scores(q, k, frames, positions, stride, theta=10000.0):
    """Float64 logits by explicit 2x2 rotation matrices, pair (2i, 2i+1) at angle pos * theta^(-2i/d)."""
    d = q.shape[-1]
    q, k = q.double(), k.double()

    def rotation(pos: float) -> torch.Tensor:
        mat = torch.zeros(d, d, dtype=torch.float64)
        for i in range(d // 2):
            a = pos * theta ** (-2 * i / d)
            mat[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
                [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64
            )
        return mat

    b, h, nq, _ = q.shape
    length = k.shape[2]
    out = torch.empty(b, h, nq, length, dtype=torch.float64)
    for bi in range(b):
        for i in range(nq):
            qpos = float(frames[i]) * stride if frames[i] >= 0 else 0.0
            for j in range(length):
                p = float(positions[bi, j])
                if math.isnan(p):
                    out[bi, :, i, j] = (q[bi, :, i] * k[bi, :, j]).sum(-1)
                else:
                    out[bi, :, i, j] = ((rotation(qpos) @ q[bi, :, i].T).T * (rotation(p) @ k[bi, :, j].T).T).sum(-1)
    return out


FRAMES = torch.tensor([0, 0, 1, 1, 2, -1])
POSITIONS = torch.tensor(
    [
        [float("nan"), float("nan"), 0.0, 4.0, 4.0, 8.0, float("nan")],
        [float("nan"), 6.0, 2.5, float("nan"), 8.0, 8.0, 0.0],
    ]
)


def test_d_matches_float64_rotation_matrices():
    q, k, _ = random_qkv()
    rope = ActionRoPE(8, k=4)
    q2, k2 = rope(q, k, FRAMES, POSITIONS)
    # the doubled vectors carry sqrt(2) so the kernel's 1/sqrt(2d) scale equals 1/sqrt(d) on the true scores
    scores = (q2 @ k2.transpose(-1, -2)) / math.sqrt(2.0)
    ref = reference_scores(q, k, FRAMES, POSITIONS, stride=4)
    torch.testing.assert_close(scores, ref, rtol=0, atol=1e-12)
    # float32 inputs against the float64 reference
    q32, k32 = rope(q.float(), k.float(), FRAMES, POSITIONS)
    torch.testing.assert_close(((q32 @ k32.transpose(-1, -2)) / math.sqrt(2.0)).double(), ref, rtol=0, atol=2e-5)
    # and the attention output uses the un-doubled scale 1/sqrt(d)
    _, _, v = random_qkv()
    expected = torch.softmax(ref / math.sqrt(8), dim=-1) @ v
    kernel_scale = torch.softmax(q2 @ k2.transpose(-1, -2) / math.sqrt(q2.shape[-1]), dim=-1) @ v
    torch.testing.assert_close(kernel_scale, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(attention(q2, k2, v, backend="math"), expected, rtol=0, atol=1e-6)  # float32 kernel


def test_a_shifting_every_position_by_a_constant_leaves_outputs_unchanged():
    q, k, v = random_qkv()
    rope = ActionRoPE(8, k=4)
    base = cross_attention(rope, q, k, v, FRAMES, POSITIONS)
    video = FRAMES >= 0
    for shift in (1, 3, 17):
        frames = torch.where(video, FRAMES + shift, FRAMES)
        shifted = cross_attention(rope, q, k, v, frames, POSITIONS + shift * 4)  # NaN stays NaN
        torch.testing.assert_close(shifted[:, :, video], base[:, :, video], rtol=0, atol=1e-10)
    # a shift of the keys alone is not a symmetry: positions matter
    moved = cross_attention(rope, q, k, v, FRAMES, POSITIONS + 4)
    assert (moved - base).abs().max() > 1e-3


def test_attention_peaks_on_the_copy_at_the_frames_own_segment():
    rope = ActionRoPE(16, k=4)
    g = torch.Generator().manual_seed(1)
    vec = torch.randn(1, 1, 1, 16, generator=g, dtype=torch.float64)
    frames = torch.arange(5)
    q = vec.expand(1, 1, 5, 16)
    k = vec.expand(1, 1, 5, 16)  # the same caption token, one copy per segment at s * k
    positions = (torch.arange(5, dtype=torch.float64) * 4).unsqueeze(0)
    q2, k2 = rope(q, k, frames, positions)
    scores = (q2 @ k2.transpose(-1, -2))[0, 0]  # (5 queries, 5 copies)
    assert torch.equal(scores.argmax(-1), frames)


def test_c_off_is_plain_cross_attention():
    q, k, v = random_qkv(torch.float32)
    rope = ActionRoPE(8)
    plain = cross_attention(None, q, k, v, FRAMES, None)
    assert torch.equal(cross_attention(rope, q, k, v, FRAMES, None), plain)
    all_free = torch.full_like(POSITIONS, float("nan"))
    torch.testing.assert_close(cross_attention(rope, q, k, v, FRAMES, all_free), plain, rtol=0, atol=1e-6)


def test_errors_name_what_is_wrong():
    q, k, _ = random_qkv()
    with pytest.raises(ValueError, match="even head_dim"):
        ActionRoPE(7)
    with pytest.raises(ValueError, match="configured head_dim"):
        ActionRoPE(16)(q, k, FRAMES, POSITIONS)
    with pytest.raises(ValueError, match=r"key_positions must be \(B, L\)"):
        ActionRoPE(8)(q, k, FRAMES, POSITIONS[:, :3])


# ----------------------------------------------------------------------------------------------------
# through the backbone and the action-caption adapter


def tiny_backbone(rope: ActionRoPE | None, num_layers: int, seed: int = 0) -> WanDiT:
    torch.manual_seed(seed)
    model = WanDiT(
        in_channels=48,
        out_channels=48,
        dim=32,
        ffn_dim=64,
        num_layers=num_layers,
        num_heads=2,
        text_dim=32,
        freq_dim=32,
        cross_attention_rope=rope,
    )
    torch.nn.init.normal_(model.head.proj.weight, std=0.1)  # a "pretrained" head instead of Wan's zero init
    return model.eval()


ACTIONS = [[{"start": 5, "end": 9, "text": "pulls the zipper down"}], []]


def action_context(hard_mask: bool, positions: str = "segment", seed: int = 0):
    torch.manual_seed(seed)
    vae = PixelVAE(spatial_compression=2, temporal_compression=4)
    env = ConditionEnv(vae, (2, 48, 4, 4, 4))  # 13 frames -> 4 latent frames; action frames 5..8 = segment 2
    adapter = ActionCaptionAdapter(ByteTextEncoder(32, max_length=32), k=4, positions=positions, hard_mask=hard_mask)
    with torch.no_grad():
        out = adapter({"actions": ACTIONS}, env, torch.ones(2, dtype=torch.bool))
    return out


def test_b_hard_mask_frames_outside_every_span_ignore_action_tokens_exactly():
    out = action_context(hard_mask=True)
    positioned = ~torch.isnan(out.positions)  # (B, L): action tokens of sample 0
    assert positioned[0].any() and not positioned[1].any()
    assert torch.equal(out.mask[0, :, positioned[0]].any(-1), torch.tensor([False, False, True, False]))
    model = tiny_backbone(ActionRoPE(16, k=4), num_layers=1)  # one block: no self-attention path between frames
    latents = torch.randn(2, 48, 4, 4, 4)
    t = torch.tensor([300.0, 700.0])
    base = model(latents, t, BackboneInputs(out.value, context_positions=out.positions, context_mask=out.mask))
    changed = out.value.clone()
    changed[positioned] = torch.randn_like(changed[positioned]) * 5  # other action text
    after = model(latents, t, BackboneInputs(changed, context_positions=out.positions, context_mask=out.mask))
    outside = [0, 1, 3]
    assert torch.equal(after[0, :, outside], base[0, :, outside])
    assert not torch.allclose(after[0, :, 2], base[0, :, 2])
    assert torch.equal(after[1], base[1])


def test_c_backbone_with_arope_off_equals_backbone_without_rope():
    on = action_context(hard_mask=False, positions="segment")
    off = action_context(hard_mask=False, positions="none")
    assert off.positions is None and torch.equal(off.value, on.value)
    with_rope = tiny_backbone(ActionRoPE(16, k=4), num_layers=2)
    plain = tiny_backbone(None, num_layers=2)
    latents = torch.randn(2, 48, 4, 4, 4)
    t = torch.tensor([100.0, 900.0])
    kwargs = dict(context_mask=off.mask)
    expected = plain(latents, t, BackboneInputs(off.value, **kwargs))
    assert torch.equal(with_rope(latents, t, BackboneInputs(off.value, **kwargs)), expected)
    # with positions the same tokens give a different (position-aware) result on the action sample only
    rotated = with_rope(latents, t, BackboneInputs(on.value, context_positions=on.positions, **kwargs))
    assert not torch.allclose(rotated[0], expected[0], atol=1e-5)
    torch.testing.assert_close(rotated[1], expected[1], rtol=0, atol=0)
