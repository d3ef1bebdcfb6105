"""Zero-initialised gated attention: the "zero-init attention" of adapter methods, as a subclass of WanAttention.

New tokens get their own softmax, whose output is scaled per head by ``tanh(gate)`` (``gate`` starts at 0) and
added to the output of the softmax over the pretrained tokens. At init the new tokens change nothing, exactly.

* self-attention (``SelfAttentionInputs.video_span = (start, end)``): video queries attend the video tokens
  ``[start, end)`` with one softmax and the other tokens (reference frames before, appended tokens after) with the
  gated one; the other tokens as queries attend the whole sequence with one softmax (their outputs never reach a
  video token except through a gated branch, and are dropped at the end);
* cross-attention (``CrossAttentionInputs.gated``): every query attends ``context`` with one softmax and the gated
  context tokens (with their own mask and rotary positions) with the gated one.

Without ``video_span`` / ``gated`` it computes what :class:`~itryon.models.attention.WanAttention` computes.
"""

from __future__ import annotations

import torch
from torch import nn

from itryon.models.attention import CrossAttentionInputs, GatedContext, SelfAttentionInputs, WanAttention, attention
from itryon.models.rope import apply_rotary


class GatedWanAttention(WanAttention):
    """WanAttention with a per-head ``gate`` (zero at init) for the gated self- and cross-attention branches."""

    def __init__(self, dim: int, num_heads: int, *, eps: float = 1e-6, backend: str = "sdpa"):
        super().__init__(dim, num_heads, eps=eps, backend=backend)
        self.gate = nn.Parameter(torch.zeros(num_heads))

    def _tanh_gate(self, dtype: torch.dtype) -> torch.Tensor:
        return torch.tanh(self.gate.float()).to(dtype).view(1, -1, 1, 1)  # (1, H, 1, 1)

    def self_attention(self, x: torch.Tensor, inputs: SelfAttentionInputs) -> torch.Tensor:
        if inputs.video_span is None:
            return super().self_attention(x, inputs)
        q = self._queries(x)  # (B, N, H, D)
        k, v = self._keys_values(x)
        cos, sin = inputs.rope_cos.unsqueeze(-2), inputs.rope_sin.unsqueeze(-2)  # (N, 1, D/2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        out = self.gated_self_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), inputs.video_span, inputs
        )
        return self.o(out.flatten(2).to(x.dtype))

    def cross_attention(self, x: torch.Tensor, inputs: CrossAttentionInputs) -> torch.Tensor:
        if inputs.gated is None:
            return super().cross_attention(x, inputs)
        q = self._queries(x).transpose(1, 2)  # (B, H, N, D)
        k, v = (t.transpose(1, 2) for t in self._keys_values(inputs.context))  # (B, H, L, D) each
        rotated_q, k = self._rotate_cross(q, k, inputs.rope, inputs.query_frames, inputs.key_positions)
        out = attention(rotated_q, k, v, inputs.mask, self.backend)  # (B, H, N, D)
        out = out + self._tanh_gate(out.dtype) * self.gated_cross_attention(q, inputs.gated, inputs)
        return self.o(out.transpose(1, 2).flatten(2).to(x.dtype))

    def gated_self_attention(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        video_span: tuple[int, int],
        inputs: SelfAttentionInputs | None = None,
    ) -> torch.Tensor:
        """``(B, H, N, D)`` q, k, v -> token-major ``(B, N, H, D)`` output of the gated self-attention.

        Under context parallelism (``inputs.parallel``) the tokens are this rank's slices of each token group and
        ``video_span`` is the video slice's place among them; each softmax then runs over its groups' whole sequence.
        """
        if inputs is not None and inputs.parallel is not None:
            return self._parallel_gated_self_attention(q, k, v, video_span, inputs.parallel)

        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return attention(q, k, v, None, self.backend)

        start, end = video_span
        n = q.shape[2]
        if not 0 <= start <= end <= n:
            raise ValueError(f"video_span {video_span} must satisfy 0 <= start <= end <= N = {n}")

        def others(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t[:, :, :start], t[:, :, end:]], dim=2)  # (B, H, N - (end - start), D)

        q_video, k_video, v_video = q[:, :, start:end], k[:, :, start:end], v[:, :, start:end]
        video = attend(q_video, k_video, v_video)  # (B, H, N_video, D)
        if end - start < n:
            gated = attend(q_video, others(k), others(v))
            video = video + self._tanh_gate(video.dtype) * gated
        rest = attend(others(q), k, v).transpose(1, 2)  # (B, N - N_video, H, D)
        return torch.cat([rest[:, :start], video.transpose(1, 2), rest[:, start:]], dim=1)  # (B, N, H, D)

    def _parallel_gated_self_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, video_span: tuple[int, int], parallel
    ) -> torch.Tensor:
        """The same softmaxes over a context-parallel group (every rank holds the same layout of slices), each as a
        whole-sequence attention of every query with a key mask ``(N,)`` (diffusers' Ulysses backward needs queries
        and keys of one length): video keys (the video rows' base softmax), every key (the other rows'), the other
        keys (the video rows' gated softmax)."""
        start, end = video_span
        local = torch.zeros(q.shape[2], dtype=torch.bool, device=q.device)
        local[start:end] = True  # this rank's video rows
        video = local.repeat(parallel.degree)  # (N,) video keys of the whole sequence, in the group's order
        base = torch.where(
            local[:, None], parallel.attention(q, k, v, video), parallel.attention(q, k, v)
        )  # (B, H, n, D)
        gated = parallel.attention(q, k, v, ~video) * local[:, None].to(base.dtype)
        return (base + self._tanh_gate(base.dtype) * gated).transpose(1, 2)  # (B, n, H, D)

    def gated_cross_attention(self, q: torch.Tensor, gated: GatedContext, inputs: CrossAttentionInputs) -> torch.Tensor:
        """``(B, H, N, D)`` queries (before any rotary hook) -> ``(B, H, N, D)`` attention over the gated tokens."""
        k, v = (t.transpose(1, 2) for t in self._keys_values(gated.tokens))  # (B, H, G, D) each
        q, k = self._rotate_cross(q, k, inputs.rope, inputs.query_frames, gated.key_positions)
        return attention(q, k, v, gated.mask, self.backend)  # (B, H, N, D)
