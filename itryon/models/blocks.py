"""Transformer blocks of the Wan2.1 DiT and of its VACE context branch.

A block: adaLN-modulated self-attention with 3D RoPE, text cross-attention (optionally LayerNorm'd input,
optional rotary hook and mask), adaLN-modulated tanh-GELU FFN. Norms and modulation run in float32; the
residual stream keeps the activation dtype. With ``zero_init_gates`` both attentions hold zero-initialised
per-head gates for the tokens that join a pretrained model's attention (see :mod:`itryon.models.attention`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from itryon.models.attention import CrossAttentionRope, GatedContext, WanAttention


class AffineLayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 and returned in the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class WanBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        num_heads: int,
        *,
        eps: float = 1e-6,
        cross_attn_norm: bool = True,
        attention_backend: str = "sdpa",
        zero_init_gates: bool = False,
    ):
        super().__init__()
        self.dim = dim
        self.eps = eps
        attn_kwargs = dict(eps=eps, backend=attention_backend, gated=zero_init_gates)
        self.self_attn = WanAttention(dim, num_heads, **attn_kwargs)
        self.cross_norm = AffineLayerNorm(dim, eps=eps) if cross_attn_norm else nn.Identity()
        self.cross_attn = WanAttention(dim, num_heads, **attn_kwargs)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), (self.dim,), eps=self.eps)

    def forward(
        self,
        x: torch.Tensor,  # (B, N, dim)
        context: torch.Tensor,  # (B, L, dim)
        time_modulation: torch.Tensor,  # (B, 6, dim)
        rope_cos: torch.Tensor,  # (N, head_dim/2)
        rope_sin: torch.Tensor,
        cross_mask: torch.Tensor | None = None,  # (B, N, L) bool
        cross_rope: CrossAttentionRope | None = None,
        query_frames: torch.Tensor | None = None,  # (N,) long
        key_positions: torch.Tensor | None = None,  # (B, L) float
        video_span: tuple[int, int] | None = None,  # [start, end) of the video tokens (gated self-attention)
        gated_context: GatedContext | None = None,  # gated cross-attention branch
    ) -> torch.Tensor:
        shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff = (self.modulation + time_modulation.float()).chunk(
            6, dim=1
        )  # each (B, 1, dim) float32

        # 1. self-attention
        h = (self._norm(x) * (1 + scale_sa) + shift_sa).to(x.dtype)
        x = (x.float() + self.self_attn(h, rope=(rope_cos, rope_sin), video_span=video_span) * gate_sa).to(x.dtype)

        # 2. cross-attention to text
        h = self.cross_norm(x.float()).to(x.dtype)
        x = x + self.cross_attn(
            h,
            context=context,
            mask=cross_mask,
            cross_rope=cross_rope,
            query_frames=query_frames,
            key_positions=key_positions,
            gated_context=gated_context,
        )

        # 3. feed-forward
        h = (self._norm(x) * (1 + scale_ff) + shift_ff).to(x.dtype)
        return (x.float() + self.ffn(h).float() * gate_ff).to(x.dtype)


class VaceBlock(WanBlock):
    """A VACE context block: a Wan block on the context stream that emits a zero-initialised hint.

    The first context block projects the embedded VACE context and adds the main stream's input
    tokens (``before_proj``); every block emits ``after_proj(context_stream)`` as the hint for its main block.
    """

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, *, first: bool, **kwargs):
        super().__init__(dim, ffn_dim, num_heads, **kwargs)
        self.before_proj = nn.Linear(dim, dim) if first else None
        self.after_proj = nn.Linear(dim, dim)

    def forward(  # type: ignore[override]
        self,
        control: torch.Tensor,  # (B, N, dim) context stream
        x: torch.Tensor,  # (B, N, dim) main stream input tokens (used by the first block)
        context: torch.Tensor,
        time_modulation: torch.Tensor,
        rope_cos: torch.Tensor,
        rope_sin: torch.Tensor,
        cross_mask: torch.Tensor | None = None,
        cross_rope: CrossAttentionRope | None = None,
        query_frames: torch.Tensor | None = None,
        key_positions: torch.Tensor | None = None,
        video_span: tuple[int, int] | None = None,
        gated_context: GatedContext | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.before_proj is not None:
            control = self.before_proj(control) + x
        control = super().forward(
            control,
            context,
            time_modulation,
            rope_cos,
            rope_sin,
            cross_mask,
            cross_rope,
            query_frames,
            key_positions,
            video_span,
            gated_context,
        )
        return self.after_proj(control), control  # hint (B, N, dim), new context stream
