"""A-RoPE's literal reading: queries always rotated, keys without a position act as keys at position 0."""

from __future__ import annotations

import math

import pytest
import torch

from itryon.models import BackboneInputs, WanDiT
from itryon.models.action_rope import ActionRoPE

NAN = float("nan")
FRAMES = torch.tensor([0, 1, 2, 3, -1])  # (Nq,)
POSITIONS = torch.tensor([[NAN, NAN, 4.0, 8.0], [NAN, 0.0, 12.0, NAN]])  # (B, L)


def _rotation(pos: float, d: int, theta: float = 10000.0) -> torch.Tensor:
    mat = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        a = pos * theta ** (-2 * i / d)
        mat[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
            [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64
        )
    return mat


def literal_scores(q, k, frames, positions, stride):
    """``R(frame * stride) q . R(p) k`` with p = 0 for NaN keys and unrotated frame -1 queries, float64 ``(B, H, Nq, L)``."""
    d = q.shape[-1]
    out = torch.empty(q.shape[0], q.shape[1], q.shape[2], k.shape[2], dtype=torch.float64)
    for b in range(q.shape[0]):
        for i, f in enumerate(frames.tolist()):
            rq = q[b, :, i].double() @ _rotation(f * stride if f >= 0 else 0.0, d).T  # (H, D)
            for j, p in enumerate(positions[b].tolist()):
                rk = k[b, :, j].double() @ _rotation(0.0 if math.isnan(p) else p, d).T
                out[b, :, i, j] = (rq * rk).sum(-1)
    return out


def _qk(seed=0, d=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 2, 5, d, generator=g, dtype=torch.float64), torch.randn(
        2, 2, 4, d, generator=g, dtype=torch.float64
    )


def test_literal_scores_match_rotation_matrices():
    q, k = _qk()
    rope = ActionRoPE(8, k=4, mode="literal")
    q2, k2 = rope(q, k, FRAMES, POSITIONS)
    assert q2.shape == q.shape and k2.shape == k.shape  # no doubling
    torch.testing.assert_close(
        q2 @ k2.transpose(-1, -2), literal_scores(q, k, FRAMES, POSITIONS, 4), rtol=0, atol=1e-12
    )


def test_the_readings_differ_only_on_keys_without_position():
    q, k = _qk()
    literal = ActionRoPE(8, k=4, mode="literal")
    free = ActionRoPE(8, k=4)
    ql, kl = literal(q, k, FRAMES, POSITIONS)
    qf, kf = free(q, k, FRAMES, POSITIONS)
    s_lit = ql @ kl.transpose(-1, -2)
    s_free = qf @ kf.transpose(-1, -2) / math.sqrt(2.0)  # the doubled queries carry sqrt(2)
    positioned = ~torch.isnan(POSITIONS)[:, None, None, :].expand_as(s_lit)  # (B, H, Nq, L)
    torch.testing.assert_close(s_lit[positioned], s_free[positioned], rtol=0, atol=1e-12)
    # a key without position: frame-dependent under the literal reading, plain q . k when position-free
    plain = q @ k.transpose(-1, -2)
    torch.testing.assert_close(s_free[~positioned], plain[~positioned], rtol=0, atol=1e-12)
    unrotated_queries = (FRAMES <= 0)[None, None, :, None].expand_as(s_lit)  # frame 0 and -1: angle 0
    torch.testing.assert_close(
        s_lit[~positioned & unrotated_queries], plain[~positioned & unrotated_queries], rtol=0, atol=1e-12
    )
    assert (s_lit[~positioned & ~unrotated_queries] - plain[~positioned & ~unrotated_queries]).abs().min() > 1e-6


def test_without_key_positions_only_the_literal_reading_rotates():
    q, k = _qk()
    assert ActionRoPE(8)(q, k, FRAMES, None) == (q, k)
    q2, k2 = ActionRoPE(8, k=4, mode="literal")(q, k, FRAMES, None)
    assert torch.equal(k2, k) and torch.equal(q2[:, :, 0], q[:, :, 0]) and not torch.allclose(q2[:, :, 1], q[:, :, 1])
    torch.testing.assert_close(
        q2 @ k2.transpose(-1, -2), literal_scores(q, k, FRAMES, torch.full((2, 4), NAN), 4), rtol=0, atol=1e-12
    )
    with pytest.raises(ValueError, match=r"ActionRoPE mode must be one of \('position_free', 'literal'\), got 'exact'"):
        ActionRoPE(8, mode="exact")


def test_backbone_global_caption_reads_the_frame_under_the_literal_reading():
    def backbone(rope):
        torch.manual_seed(0)
        model = WanDiT(
            in_channels=48,
            out_channels=48,
            dim=32,
            ffn_dim=64,
            num_layers=1,
            num_heads=2,
            text_dim=32,
            freq_dim=32,
            cross_attention_rope=rope,
        )
        torch.nn.init.normal_(model.head.proj.weight, std=0.1)
        return model.eval()

    latents, t = torch.randn(1, 48, 4, 4, 4), torch.tensor([500.0])
    context = torch.randn(1, 6, 32)  # a global caption alone: no key positions
    with torch.no_grad():
        plain = backbone(None)(latents, t, BackboneInputs(context))
        free = backbone(ActionRoPE(16, k=4))(latents, t, BackboneInputs(context))
        literal = backbone(ActionRoPE(16, k=4, mode="literal"))(latents, t, BackboneInputs(context))
    assert torch.equal(free, plain)
    torch.testing.assert_close(literal[:, :, 0], plain[:, :, 0], rtol=0, atol=1e-6)  # frame 0 sits at position 0
    assert not torch.allclose(literal[:, :, 1:], plain[:, :, 1:], atol=1e-4)
