"""Transformer blocks of the Wan2.1 DiT and of its VACE context branch.

A block: adaLN-modulated self-attention with 3D RoPE, text cross-attention (optionally LayerNorm'd input,
optional rotary hook and mask), adaLN-modulated tanh-GELU FFN. Norms and modulation run in float32; the
residual stream keeps the activation dtype. With ``zero_init_gates`` both attentions are
:class:`~itryon.models.gated_attention.GatedWanAttention`: zero-initialised per-head gates for the tokens that join
a pretrained model's attention. With ``gradient_checkpointing`` a block's activations are recomputed in the backward
pass (inside the block's call, so that a compiled block compiles the checkpoint with it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from itryon.models.attention import CrossAttentionInputs, SelfAttentionInputs, WanAttention
from itryon.models.gated_attention import GatedWanAttention


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
        self.gradient_checkpointing = False
        attention_class = GatedWanAttention if zero_init_gates else WanAttention
        self.self_attn = attention_class(dim, num_heads, eps=eps, backend=attention_backend)
        self.cross_norm = AffineLayerNorm(dim, eps=eps) if cross_attn_norm else nn.Identity()
        self.cross_attn = attention_class(dim, num_heads, eps=eps, backend=attention_backend)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), (self.dim,), eps=self.eps)

    def forward(self, *args: object) -> torch.Tensor:
        """:meth:`step` of the arguments, recomputed in the backward pass with ``gradient_checkpointing``."""
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(self.step, *args, use_reentrant=False)
        return self.step(*args)

    def step(
        self,
        x: torch.Tensor,  # (B, N, dim)
        time_modulation: torch.Tensor,  # (B, 6, dim)
        self_inputs: SelfAttentionInputs,
        cross_inputs: CrossAttentionInputs,
    ) -> torch.Tensor:
        shift_sa, scale_sa, gate_sa, shift_ff, scale_ff, gate_ff = (self.modulation + time_modulation.float()).chunk(
            6, dim=1
        )  # each (B, 1, dim) float32

        # 1. self-attention
        h = (self._norm(x) * (1 + scale_sa) + shift_sa).to(x.dtype)
        x = (x.float() + self.self_attn.self_attention(h, self_inputs) * gate_sa).to(x.dtype)

        # 2. cross-attention to text
        h = self.cross_norm(x.float()).to(x.dtype)
        x = x + self.cross_attn.cross_attention(h, cross_inputs)

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

    def step(  # type: ignore[override]
        self,
        control: torch.Tensor,  # (B, N, dim) context stream
        x: torch.Tensor,  # (B, N, dim) main stream input tokens (used by the first block)
        time_modulation: torch.Tensor,  # (B, 6, dim)
        self_inputs: SelfAttentionInputs,
        cross_inputs: CrossAttentionInputs,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.before_proj is not None:
            control = self.before_proj(control) + x
        control = super().step(control, time_modulation, self_inputs, cross_inputs)
        return self.after_proj(control), control  # hint (B, N, dim), new context stream
