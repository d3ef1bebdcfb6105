"""Attention of the Wan2.1 DiT: projections, RMS-normalised q/k, pluggable rotary embedding, selectable kernel.

The attention kernels and the cross-attention rotary hook see ``(B, heads, N, head_dim)`` tensors (views of
token-major ``(B, N, heads, head_dim)`` memory, so that the output flattens back to ``(B, N, dim)`` without a copy).

Cross-attention rotary hook (A-RoPE plugs in here without editing the block)::

    rope(q, k, query_frames, key_positions) -> (q, k)

* ``q`` ``(B, heads, Nq, head_dim)``, ``k`` ``(B, heads, L, head_dim)``;
* ``query_frames`` ``(Nq,)`` long: latent-frame index of each query token (video frames ``0..F-1``,
  counted after any reference frames); ``-1`` marks tokens that must not be rotated (reference / extra tokens);
* ``key_positions`` ``(B, L)`` float: position of each text key; NaN marks keys that must not be rotated.
  Without key positions the hook is skipped, unless it sets ``always_rotates_queries`` (then it gets None).

Masks are boolean ``(B, Nq, L)`` with True = may attend. A query whose row is all False attends nothing:
its attention output (before the output projection) is exactly zero, never NaN.

A block passes its attention inputs as two frozen dataclasses, :class:`SelfAttentionInputs` and
:class:`CrossAttentionInputs`. Their ``video_span`` and ``gated`` fields belong to the zero-initialised gated
branches of :mod:`itryon.models.gated_attention`; :class:`WanAttention` refuses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from itryon.models.rope import apply_rotary

if TYPE_CHECKING:
    from itryon.models.context_parallel import ContextParallel

ATTENTION_BACKENDS = ("sdpa", "xformers", "math")


class CrossAttentionRope(Protocol):
    def __call__(
        self, q: torch.Tensor, k: torch.Tensor, query_frames: torch.Tensor, key_positions: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass(frozen=True)
class GatedContext:
    """Context tokens of the gated cross-attention branch (:class:`~itryon.models.gated_attention.GatedWanAttention`)."""

    tokens: torch.Tensor  # (B, G, dim) embedded text tokens
    mask: torch.Tensor | None  # (B, N, G) bool, True = may attend
    key_positions: torch.Tensor | None  # (B, G) float, NaN = not rotated


@dataclass(frozen=True)
class SelfAttentionInputs:
    """What every block's self-attention reads besides its input tokens."""

    rope_cos: torch.Tensor  # (N, head_dim/2) 3D RoPE tables of the sequence
    rope_sin: torch.Tensor  # (N, head_dim/2)
    video_span: tuple[int, int] | None = None  # gated self-attention: [start, end) of the video tokens
    # context parallelism: the tokens are this rank's slice of the sequence; attention crosses the group
    parallel: ContextParallel | None = None


@dataclass(frozen=True)
class CrossAttentionInputs:
    """What every block's text cross-attention reads besides its query tokens."""

    context: torch.Tensor  # (B, L, dim) embedded text tokens
    query_frames: torch.Tensor  # (N,) long latent frame of each query, -1 = not rotated
    mask: torch.Tensor | None = None  # (B, N, L) bool, True = may attend
    rope: CrossAttentionRope | None = None  # rotary hook (A-RoPE)
    key_positions: torch.Tensor | None = None  # (B, L) float, NaN = not rotated
    gated: GatedContext | None = None  # tokens of the gated cross-attention branch


def _always(cross_rope: CrossAttentionRope) -> bool:
    """Whether the hook runs even when no key has a position (A-RoPE's literal reading rotates every query)."""
    return bool(getattr(cross_rope, "always_rotates_queries", False))


def check_backend(backend: str) -> str:
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(f"attention_backend must be one of {ATTENTION_BACKENDS}, got {backend!r}")
    if backend == "xformers":
        try:
            import xformers.ops  # noqa: F401
        except ImportError as err:
            raise ImportError(
                "attention_backend='xformers' needs the xformers package (pip install xformers); "
                "use 'sdpa' (the default) instead"
            ) from err
    return backend


def _math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    # explicit float32 reference kernel, kept for numerics checks independent of fused kernels
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (B, H, Nq, L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(scores.softmax(dim=-1), v.float()).to(q.dtype)


def _xformers_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    import xformers.ops

    if not q.is_cuda:
        raise RuntimeError(f"attention_backend='xformers' runs on CUDA tensors only, got device {q.device}; use 'sdpa'")
    bias = None
    if mask is not None:
        # xformers wants the bias' last dim padded to a multiple of 8 in memory; slice a padded buffer
        b, h, nq, nk = mask.shape[0], q.shape[1], mask.shape[-2], mask.shape[-1]
        padded = torch.zeros(b, h, nq, (nk + 7) // 8 * 8, dtype=q.dtype, device=q.device)
        bias = padded[..., :nk]
        bias.masked_fill_(~mask.expand(b, h, nq, nk), float("-inf"))
    out = xformers.ops.memory_efficient_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias
    )  # (B, Nq, H, D)
    return out.transpose(1, 2)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, backend: str = "sdpa"
) -> torch.Tensor:
    """Scaled dot-product attention on ``(B, H, N, D)`` tensors; ``mask`` bool broadcastable to ``(B, H, Nq, L)``.

    Rows of ``mask`` that are entirely False, and attention over zero keys, give a zero output.
    """
    if k.shape[-2] == 0:
        return q.new_zeros(*q.shape[:-1], v.shape[-1])
    has_key = None
    if mask is not None:
        mask = mask if mask.ndim == 4 else mask.unsqueeze(1)  # (B, 1, Nq, L)
        # no data-dependent branch (keeps torch.compile graphs whole): always repair empty rows
        has_key = mask.any(dim=-1, keepdim=True)  # (B, 1, Nq, 1)
        mask = mask | ~has_key
    if backend == "sdpa":
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    elif backend == "math":
        out = _math_attention(q, k, v, mask)
    elif backend == "xformers":
        out = _xformers_attention(q, k, v, mask)
    else:
        check_backend(backend)
        raise AssertionError(backend)
    if has_key is not None:
        out = out * has_key.to(out.dtype)
    return out


class WanAttention(nn.Module):
    """Multi-head attention with q/k RMSNorm across heads (Wan ``qk_norm``) and an output projection.

    Self-attention when ``context`` is None (3D RoPE from ``rope``), otherwise cross-attention to ``context``
    with an optional rotary hook ``cross_rope`` (see the module docstring). A block calls it through
    :meth:`self_attention` and :meth:`cross_attention`.
    """

    def __init__(self, dim: int, num_heads: int, *, eps: float = 1e-6, backend: str = "sdpa"):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.eps = eps
        self.backend = check_backend(backend)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = nn.RMSNorm(dim, eps=eps)
        self.norm_k = nn.RMSNorm(dim, eps=eps)

    def _rms(self, norm: nn.RMSNorm, x: torch.Tensor) -> torch.Tensor:
        # normalise in float32 whatever the activation dtype
        return F.rms_norm(x.float(), (self.dim,), norm.weight.float(), self.eps).to(x.dtype)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim))  # (B, N, H, D)

    def _queries(self, x: torch.Tensor) -> torch.Tensor:
        return self._heads(self._rms(self.norm_q, self.q(x)))  # (B, N, H, D)

    def _keys_values(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self._heads(self._rms(self.norm_k, self.k(source)))  # (B, L, H, D)
        return k, self._heads(self.v(source))

    def _rotate_cross(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        cross_rope: CrossAttentionRope | None,
        query_frames: torch.Tensor | None,
        key_positions: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The rotary hook on ``(B, H, N, D)`` queries and ``(B, H, L, D)`` keys, when it applies."""
        if cross_rope is None or (key_positions is None and not _always(cross_rope)):
            return q, k
        if query_frames is None:
            raise ValueError("a cross-attention rotary hook needs query_frames (the latent frame of each query)")
        return cross_rope(q, k, query_frames, key_positions)

    def forward(
        self,
        x: torch.Tensor,  # (B, N, dim)
        *,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,  # cos, sin (N, head_dim/2) for self-attention
        context: torch.Tensor | None = None,  # (B, L, dim)
        mask: torch.Tensor | None = None,  # (B, N, L) bool
        cross_rope: CrossAttentionRope | None = None,
        query_frames: torch.Tensor | None = None,  # (N,) long
        key_positions: torch.Tensor | None = None,  # (B, L) float, NaN = not rotated
        parallel: ContextParallel | None = None,  # self-attention over a context-parallel group's sequence
    ) -> torch.Tensor:
        source = x if context is None else context
        q = self._queries(x)  # (B, N, H, D)
        k, v = self._keys_values(source)  # (B, L, H, D) each
        if rope is not None:
            cos, sin = (t.unsqueeze(-2) for t in rope)  # (N, 1, D/2)
            q = apply_rotary(q, cos, sin)
            k = apply_rotary(k, cos, sin)
        # (B, H, N, D) views of token-major memory: the kernel's output then flattens back without a copy
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = self._rotate_cross(q, k, cross_rope, query_frames, key_positions)
        if parallel is not None:
            if context is not None or mask is not None:
                raise ValueError("context-parallel attention is the unmasked self-attention")
            out = parallel.attention(q, k, v)
        else:
            out = attention(q, k, v, mask, self.backend)  # (B, H, N, D)
        return self.o(out.transpose(1, 2).flatten(2).to(x.dtype))

    def self_attention(self, x: torch.Tensor, inputs: SelfAttentionInputs) -> torch.Tensor:
        """``(B, N, dim)`` -> ``(B, N, dim)`` self-attention of a block."""
        if inputs.video_span is not None:
            raise ValueError("video_span selects the gated self-attention branch: it needs a GatedWanAttention")
        return self(x, rope=(inputs.rope_cos, inputs.rope_sin), parallel=inputs.parallel)

    def cross_attention(self, x: torch.Tensor, inputs: CrossAttentionInputs) -> torch.Tensor:
        """``(B, N, dim)`` -> ``(B, N, dim)`` text cross-attention of a block."""
        if inputs.gated is not None:
            raise ValueError("gated context tokens need the gated cross-attention branch of a GatedWanAttention")
        return self(
            x,
            context=inputs.context,
            mask=inputs.mask,
            cross_rope=inputs.rope,
            query_frames=inputs.query_frames,
            key_positions=inputs.key_positions,
        )
