"""A-RoPE: action-aware rotary position embedding for the video-to-text cross-attention (iTryOn).

Queries of latent frame ``i`` are rotated by a 1D RoPE at position ``i * k``; each text key is rotated at its
own position (the action caption covering segment ``i`` sits at ``i * k``), so a frame's attention peaks on
the action happening at that moment. Keys with a NaN position (the global caption, empty action captions,
padding) are *position-free*: their logits are the plain ``q . k`` for every query, independent of the
query's frame. Queries with frame ``-1`` (reference / appended tokens) are not rotated (position 0).

Position-free keys and rotated keys in one attention call: the score of query ``q`` (position ``a``) with key
``k`` must be ``q . k`` when ``k`` is position-free and ``R(a) q . R(b) k`` when ``k`` sits at ``b``. Both are
inner products of the doubled vectors::

    q' = sqrt(2) * [q, R(a) q]            k' = [k, 0]        (position-free key)
                                          k' = [0, R(b) k]   (key at position b)

and the ``sqrt(2)`` compensates the attention kernel's ``1 / sqrt(head_dim)`` scale computed from the
doubled width, so ``q' . k' / sqrt(2 * head_dim) = score / sqrt(head_dim)`` exactly. Values keep their width.
With ``key_positions=None`` ``(q, k)`` are returned untouched (plain cross-attention); when every key is NaN the
scores equal the plain ones up to rounding.

Two readings of keys without a position (``mode``):

* ``position_free`` (default, above): such keys ignore the query's frame, so the global caption reads the
  same from every frame and a batch without positioned keys is exactly plain cross-attention.
* ``literal``: the paper's formula taken literally, ``R(i k) q . R(p) k`` with queries *always* rotated; a key
  without a position is not rotated and so acts as a key at position 0, and its score with frame ``i``
  varies with ``i`` (``R(i k) q . k = q . R(-i k) k``). The hook then also runs when no key has a
  position (``always_rotates_queries``), and no doubling is needed.

Tensor layout: ``(B, heads, N, head_dim)`` (see :mod:`itryon.models.attention`); rotation convention and
frequencies are those of :mod:`itryon.models.rope` (channel pairs ``(2i, 2i + 1)``, ``theta ** (-2i / d)``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from itryon.models.rope import apply_rotary, rope_frequencies

AROPE_MODES = ("position_free", "literal")


class ActionRoPE(nn.Module):
    """Cross-attention rotary hook ``(q, k, query_frames, key_positions) -> (q, k)`` of A-RoPE.

    Args:
        head_dim: channels per attention head (even).
        k: position stride between consecutive latent frames (segment ``i`` sits at ``i * k``).
        theta: rotary base.
        mode: ``position_free`` or ``literal``: how keys without a position are read (module docstring).
    """

    def __init__(self, head_dim: int, k: int = 4, theta: float = 10000.0, mode: str = "position_free") -> None:
        super().__init__()
        if head_dim % 2 != 0 or head_dim <= 0:
            raise ValueError(f"ActionRoPE needs a positive even head_dim, got {head_dim}")
        if k <= 0:
            raise ValueError(f"ActionRoPE k (position stride per latent frame) must be >= 1, got {k}")
        if mode not in AROPE_MODES:
            raise ValueError(f"ActionRoPE mode must be one of {AROPE_MODES}, got {mode!r}")
        self.head_dim = head_dim
        self.k = k
        self.theta = theta
        self.mode = mode
        self.always_rotates_queries = mode == "literal"  # the attention calls the hook without key positions too
        # a plain tensor, not a buffer: a module-wide ``.to(bfloat16)`` must not round the frequencies; real values
        # even when the backbone that builds it is built on the meta device
        with torch.device("cpu"):
            self.freqs = rope_frequencies(head_dim, theta)  # (D/2,) float64

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, k={self.k}, theta={self.theta}, mode={self.mode}"

    def tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin ``(..., head_dim / 2)`` float64 for ``positions`` ``(...)``; rotations cast them to their compute dtype."""
        angles = positions.to(torch.float64).unsqueeze(-1) * self.freqs.to(positions.device)
        return angles.cos(), angles.sin()

    def forward(
        self,
        q: torch.Tensor,  # (B, H, Nq, D)
        k: torch.Tensor,  # (B, H, L, D)
        query_frames: torch.Tensor,  # (Nq,) long, -1 = not rotated
        key_positions: torch.Tensor | None,  # (B, L) float, NaN = position-free (literal: position 0)
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if q.shape[-1] != self.head_dim or k.shape[-1] != self.head_dim:
            raise ValueError(
                f"ActionRoPE(head_dim={self.head_dim}) got q {tuple(q.shape)} and k {tuple(k.shape)}; "
                "expected (B, heads, N, head_dim) with the configured head_dim"
            )
        if key_positions is None and self.mode == "position_free":
            return q, k
        b, _, nq, _ = q.shape
        if query_frames.shape != (nq,):
            raise ValueError(
                f"query_frames must be ({nq},) (one latent frame per query), got {tuple(query_frames.shape)}"
            )
        if key_positions is None:  # literal reading, no positioned key: every key sits at 0
            return self._rotate_queries(q, query_frames), k
        if key_positions.shape != (b, k.shape[2]):
            raise ValueError(f"key_positions must be (B, L) = ({b}, {k.shape[2]}), got {tuple(key_positions.shape)}")
        positioned = ~torch.isnan(key_positions)  # (B, L); no data-dependent branch (keeps torch.compile graphs whole)

        # 1. queries: frame i at position i * k; frame -1 stays unrotated (angle 0)
        q_rot = self._rotate_queries(q, query_frames)  # (B, H, Nq, D)

        # 2. keys: rotated at their positions (the literal reading stops here: NaN = angle 0, unrotated)
        cos_k, sin_k = self.tables(torch.nan_to_num(key_positions, nan=0.0))  # (B, L, D/2)
        k_rot = apply_rotary(k, cos_k.unsqueeze(1), sin_k.unsqueeze(1))  # (B, H, L, D)
        if self.mode == "literal":
            return q_rot, k_rot
        # position-free keys go to the first half, rotated ones to the second
        on = positioned.unsqueeze(1).unsqueeze(-1).to(k.dtype)  # (B, 1, L, 1)
        k_out = torch.cat([k * (1 - on), k_rot * on], dim=-1)  # (B, H, L, 2D)
        q_out = torch.cat([q, q_rot], dim=-1) * math.sqrt(2.0)  # (B, H, Nq, 2D)
        return q_out, k_out

    def _rotate_queries(self, q: torch.Tensor, query_frames: torch.Tensor) -> torch.Tensor:
        """``q`` ``(B, H, Nq, D)`` rotated at ``frame * k``; frame -1 (reference / extra tokens) stays unrotated."""
        q_pos = torch.where(
            query_frames >= 0, query_frames.to(torch.float64) * self.k, torch.zeros((), dtype=torch.float64)
        )
        cos_q, sin_q = self.tables(q_pos.to(q.device))  # (Nq, D/2)
        return apply_rotary(q, cos_q, sin_q)
