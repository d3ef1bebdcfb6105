"""The Wan2.1-family video DiT (with the optional VACE context branch) and its condition hooks.

With only ``(latents, timestep, context)`` it computes what diffusers' ``WanTransformer3DModel`` computes;
with ``vace_context`` what ``WanVACETransformer3DModel`` computes with that control input. The keyword
hooks (reference frames, token residual, extra tokens, cross-attention rotary/mask) are what the
conditioning adapters use; each is absent by default and then changes nothing.

``zero_init_gates=True`` adds zero-initialised per-head gates to every (main and VACE) block, so that the tokens
that join a softmax (reference frames, extra tokens, and the context tokens marked by ``gated_context``) start as
an exact no-op on a pretrained backbone (see :mod:`itryon.models.attention`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from itryon.models.attention import GatedContext, WanAttention, check_backend
from itryon.models.blocks import VaceBlock, WanBlock
from itryon.models.rope import RotaryEmbedding3D, grid_positions


def timestep_sinusoid(timestep: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """``(B,)`` -> ``(B, dim)`` float32 ``[cos, sin]`` embedding with frequencies ``max_period ** (-i / (dim/2))``."""
    if dim % 2 != 0:
        raise ValueError(f"freq_dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timestep.device) / half)
    angles = timestep.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class WanHead(nn.Module):
    """Output head: adaLN (shift/scale from the time embedding) then a linear projection to patch values."""

    def __init__(self, dim: int, out_features: int, eps: float = 1e-6):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.proj = nn.Linear(dim, out_features)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.modulation + time_embedding.float().unsqueeze(1)).chunk(2, dim=1)  # (B, 1, dim) each
        h = (F.layer_norm(x.float(), (self.dim,), eps=self.eps) * (1 + scale) + shift).to(x.dtype)
        return self.proj(h)


class WanDiT(nn.Module):
    """Wan2.1 video diffusion transformer (T2V / VACE shapes), usable from a config or a local checkpoint."""

    def __init__(
        self,
        in_channels: int = 16,
        out_channels: int = 16,
        patch_size: Sequence[int] = (1, 2, 2),
        dim: int = 1536,
        ffn_dim: int = 8960,
        num_layers: int = 30,
        num_heads: int = 12,
        text_dim: int = 4096,
        freq_dim: int = 256,
        eps: float = 1e-6,
        cross_attn_norm: bool = True,
        rope_max_seq_len: int = 1024,
        vace_layers: Sequence[int] | None = None,
        vace_in_channels: int = 96,
        cross_attention_rope: nn.Module | None = None,
        attention_backend: str = "sdpa",
        gradient_checkpointing: bool = False,
        rope_theta: float = 10000.0,
        zero_init_gates: bool = False,
    ):
        super().__init__()
        patch_size = tuple(int(p) for p in patch_size)
        if len(patch_size) != 3:
            raise ValueError(f"patch_size must be (t, h, w), got {patch_size}")
        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        vace_layers = [int(i) for i in vace_layers] if vace_layers else []
        if vace_layers:
            if sorted(set(vace_layers)) != vace_layers or vace_layers[0] < 0 or vace_layers[-1] >= num_layers:
                raise ValueError(
                    f"vace_layers must be strictly increasing block indices in [0, {num_layers}), got {vace_layers}"
                )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.patch_size = patch_size
        self.dim = dim
        self.ffn_dim = ffn_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.text_dim = text_dim
        self.freq_dim = freq_dim
        self.eps = eps
        self.cross_attn_norm = cross_attn_norm
        self.rope_max_seq_len = rope_max_seq_len
        self.vace_layers = vace_layers
        self.vace_in_channels = vace_in_channels
        self.attention_backend = check_backend(attention_backend)
        self.gradient_checkpointing = gradient_checkpointing
        self.zero_init_gates = zero_init_gates

        # 1. embeddings
        self.patch_embedding = nn.Conv3d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.rope = RotaryEmbedding3D(dim // num_heads, max_position=rope_max_seq_len, theta=rope_theta)

        # 2. blocks
        block_kwargs = dict(
            eps=eps,
            cross_attn_norm=cross_attn_norm,
            attention_backend=attention_backend,
            zero_init_gates=zero_init_gates,
        )
        self.blocks = nn.ModuleList([WanBlock(dim, ffn_dim, num_heads, **block_kwargs) for _ in range(num_layers)])
        self.vace_patch_embedding = None
        self.vace_blocks = None
        if vace_layers:
            self.vace_patch_embedding = nn.Conv3d(vace_in_channels, dim, kernel_size=patch_size, stride=patch_size)
            self.vace_blocks = nn.ModuleList(
                [VaceBlock(dim, ffn_dim, num_heads, first=i == 0, **block_kwargs) for i in range(len(vace_layers))]
            )

        # 3. output head
        self.head = WanHead(dim, out_channels * math.prod(patch_size), eps)

        self.cross_attention_rope = cross_attention_rope
        self.init_weights()

    # ------------------------------------------------------------------ construction helpers
    @torch.no_grad()
    def init_weights(self) -> None:
        """Wan's initialisation: xavier linears, small-normal embeddings, zero output head and zero VACE projections
        (and zero attention gates)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for conv in (self.patch_embedding, self.vace_patch_embedding):
            if conv is not None:
                nn.init.xavier_uniform_(conv.weight.view(conv.weight.shape[0], -1))
                nn.init.zeros_(conv.bias)
        for seq in (self.text_embedding, self.time_embedding):
            for layer in seq:
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, std=0.02)
        nn.init.zeros_(self.head.proj.weight)
        for module in self.modules():
            if isinstance(module, WanAttention) and module.gate is not None:
                nn.init.zeros_(module.gate)
        if self.vace_blocks is not None:
            for block in self.vace_blocks:
                for proj in (block.before_proj, block.after_proj):
                    if proj is not None:
                        nn.init.zeros_(proj.weight)
                        nn.init.zeros_(proj.bias)

    def compile_blocks(self, **compile_kwargs) -> None:
        """``torch.compile`` every (main and VACE) block in place; embeddings and head stay eager."""
        for block in self.blocks:
            block.compile(**compile_kwargs)
        for block in self.vace_blocks or ():
            block.compile(**compile_kwargs)

    def set_attention_backend(self, backend: str) -> None:
        check_backend(backend)
        self.attention_backend = backend
        for block in [*self.blocks, *(self.vace_blocks or ())]:
            block.self_attn.backend = backend
            block.cross_attn.backend = backend

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, extra_in_channels: int = 0, dtype: torch.dtype | None = torch.float32, **overrides
    ) -> "WanDiT":
        """Load a local diffusers-format or original-Wan-format checkpoint folder (see ``itryon.models.loading``).

        ``extra_in_channels`` widens the patch embedding with zero-initialised input channels; ``dtype`` casts
        the weights (None keeps the checkpoint's); ``overrides`` set non-architecture arguments
        (attention_backend, gradient_checkpointing, cross_attention_rope, ...). ``zero_init_gates=True`` adds the
        attention gates, zero-initialised (reported as newly initialised by ``load_native_state``).
        """
        from itryon.models.loading import load_wan_dit

        return load_wan_dit(cls, path, extra_in_channels=extra_in_channels, dtype=dtype, **overrides)

    # ------------------------------------------------------------------ forward
    def _run(self, block: nn.Module, *args):
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def _check(self, name: str, tensor: torch.Tensor, expected: tuple) -> None:
        shape = tuple(tensor.shape)
        if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
            shown = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
            raise ValueError(f"{name} must have shape {shown}, got {shape}")

    def forward(
        self,
        latents: torch.Tensor,  # (B, C_in, F, H, W)
        timestep: torch.Tensor,  # (B,) in [0, 1000]
        context: torch.Tensor,  # (B, L, text_dim)
        *,
        vace_context: torch.Tensor | None = None,  # (B, vace_in_channels, F or R + F, H, W)
        vace_context_scale: float | torch.Tensor = 1.0,  # scalar or (len(vace_layers),)
        reference_latents: torch.Tensor | None = None,  # (B, C_in, R, H, W)
        token_residual: torch.Tensor | None = None,  # (B, N_video, dim)
        extra_tokens: torch.Tensor | None = None,  # (B, M, dim)
        extra_token_positions: torch.Tensor | None = None,  # (M, 3) long (t, h, w)
        context_positions: torch.Tensor | None = None,  # (B, L) float, NaN = not rotated
        context_mask: torch.Tensor | None = None,  # (B, F_lat, L) bool
        gated_context: torch.Tensor | None = None,  # (B, L) bool, True = context token of the gated branch
    ) -> torch.Tensor:
        """Velocity (or whatever the head was trained for) ``(B, out_channels, F, H, W)`` for the video frames.

        ``reference_latents`` are prepended in time (RoPE frames ``0..R-1``, video frames from ``R``) and dropped
        from the output. When ``vace_context`` covers only the ``F`` video frames and references are given, the
        references' context frames are Wan-VACE's: the reference latent's first ``out_channels`` channels, then
        zeros. ``extra_tokens`` join the sequence at ``extra_token_positions`` and are dropped from the output.
        ``context_positions`` feed ``cross_attention_rope`` (ignored without one). ``context_mask[b, f]`` says which
        text tokens queries of latent frame ``f`` may attend; reference and extra tokens attend every text token.

        With ``zero_init_gates``: reference and extra tokens reach the video tokens only through the gated
        self-attention branch, and the context tokens marked by ``gated_context`` only through the gated
        cross-attention branch (with their mask and positions). Without ``zero_init_gates`` ``gated_context`` is
        ignored: every token joins one softmax, as in Wan / Wan-VACE.
        """
        batch, channels, frames, height, width = latents.shape
        pt, ph, pw = self.patch_size
        self._check("latents", latents, (batch, self.in_channels, None, None, None))
        if frames % pt or height % ph or width % pw:
            raise ValueError(
                f"latents (F, H, W) = {(frames, height, width)} must be divisible by patch_size {self.patch_size}"
            )
        self._check("timestep", timestep, (batch,))
        self._check("context", context, (batch, None, self.text_dim))
        grid_h, grid_w = height // ph, width // pw
        video_frames = frames // pt
        tokens_per_frame = grid_h * grid_w
        device = latents.device

        # 1. patch embedding of [reference frames, video frames]
        ref_frames = 0
        stacked = latents
        if reference_latents is not None:
            self._check("reference_latents", reference_latents, (batch, self.in_channels, None, height, width))
            if reference_latents.shape[2] % pt:
                raise ValueError(f"reference_latents frames ({reference_latents.shape[2]}) must be divisible by {pt}")
            ref_frames = reference_latents.shape[2] // pt
            stacked = torch.cat([reference_latents.to(latents.dtype), latents], dim=2)
        x = self.patch_embedding(stacked).flatten(2).transpose(1, 2).contiguous()  # (B, (R'+F') h w, dim)
        num_ref = ref_frames * tokens_per_frame
        num_video = video_frames * tokens_per_frame
        if token_residual is not None:
            self._check("token_residual", token_residual, (batch, num_video, self.dim))
            x = torch.cat([x[:, :num_ref], x[:, num_ref:] + token_residual.to(x.dtype)], dim=1)

        positions = grid_positions(ref_frames + video_frames, grid_h, grid_w, device=device)  # (N, 3)
        query_frames = torch.cat(
            [
                torch.full((num_ref,), -1, dtype=torch.long, device=device),
                torch.arange(video_frames, device=device).repeat_interleave(tokens_per_frame),
            ]
        )  # (N,)
        if extra_tokens is not None:
            if extra_token_positions is None:
                raise ValueError("extra_tokens need extra_token_positions (M, 3) long (t, h, w) RoPE positions")
            self._check("extra_tokens", extra_tokens, (batch, None, self.dim))
            self._check("extra_token_positions", extra_token_positions, (extra_tokens.shape[1], 3))
            x = torch.cat([x, extra_tokens.to(x.dtype)], dim=1)
            positions = torch.cat([positions, extra_token_positions.to(device=device, dtype=torch.long)])
            query_frames = torch.cat(
                [query_frames, torch.full((extra_tokens.shape[1],), -1, dtype=torch.long, device=device)]
            )
        elif extra_token_positions is not None:
            raise ValueError("extra_token_positions given without extra_tokens")
        rope_cos, rope_sin = self.rope(positions)  # (N, head_dim/2) each

        # 2. time embedding, cross-attention mask and rotary key positions
        time_dtype = self.time_embedding[0].weight.dtype
        time_embedding = self.time_embedding(timestep_sinusoid(timestep, self.freq_dim).to(time_dtype))
        time_embedding = time_embedding.to(context.dtype)  # (B, dim)
        time_modulation = self.time_projection(time_embedding).unflatten(1, (6, self.dim))  # (B, 6, dim)

        cross_mask = None
        if context_mask is not None:
            self._check("context_mask", context_mask, (batch, video_frames, context.shape[1]))
            rows = context_mask.to(torch.bool)[:, query_frames.clamp(min=0)]  # (B, N, L)
            cross_mask = rows | (query_frames < 0)[None, :, None]
        key_positions = None
        if self.cross_attention_rope is not None and context_positions is not None:
            self._check("context_positions", context_positions, (batch, context.shape[1]))
            key_positions = context_positions

        # 3. text embedding; with gates, the side tokens and the gated context go through the gated branches
        if gated_context is not None:
            self._check("gated_context", gated_context, (batch, context.shape[1]))
        video_span = None
        gated_text = None
        if self.zero_init_gates and x.shape[1] > num_video:
            video_span = (num_ref, num_ref + num_video)
        if self.zero_init_gates and gated_context is not None and bool(gated_context.any()):
            text, cross_mask, key_positions, gated_text = self._split_context(
                context, gated_context, cross_mask, key_positions, x.shape[1]
            )
        else:
            text = self.text_embedding(context)  # (B, L, dim)
        cross_args = (cross_mask, self.cross_attention_rope, query_frames, key_positions, video_span, gated_text)

        # 4. VACE context branch: one hint per context block
        hints: dict[int, torch.Tensor] = {}
        if vace_context is not None:
            hints = self._vace_hints(
                vace_context,
                vace_context_scale,
                reference_latents,
                x,
                frames,
                text,
                time_modulation,
                rope_cos,
                rope_sin,
                cross_args,
            )

        # 5. main blocks
        for index, block in enumerate(self.blocks):
            x = self._run(block, x, text, time_modulation, rope_cos, rope_sin, *cross_args)
            if index in hints:
                x = x + hints[index]

        # 6. head on the video tokens, unpatchify
        out = self.head(x[:, num_ref : num_ref + num_video], time_embedding)  # (B, N_video, C_out * pt ph pw)
        out = out.reshape(batch, video_frames, grid_h, grid_w, pt, ph, pw, self.out_channels)
        out = out.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, F', pt, h, ph, w, pw)
        return out.reshape(batch, self.out_channels, frames, height, width)

    def _split_context(
        self,
        context: torch.Tensor,  # (B, L, text_dim)
        gated: torch.Tensor,  # (B, L) bool
        cross_mask: torch.Tensor | None,  # (B, N, L) bool
        key_positions: torch.Tensor | None,  # (B, L) float
        num_queries: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, GatedContext]:
        """Embedded text, mask and key positions of the base branch, and the gated branch's ``GatedContext``.

        Each branch takes the columns that belong to it in any sample (a sample's columns of the other branch are
        masked out). An all-True mask becomes None and all-NaN positions become None, so that the base branch
        computes exactly what the backbone computes without the gated tokens.
        """
        batch = context.shape[0]
        gated = gated.to(device=context.device, dtype=torch.bool)
        parts = []
        for member in (~gated, gated):
            cols = member.any(0).nonzero().squeeze(1)  # (L_part,)
            mask = member[:, None, cols]  # (B, 1, L_part)
            if cross_mask is not None:
                mask = cross_mask[..., cols] & mask  # (B, N, L_part)
            mask = None if bool(mask.all()) else mask.expand(batch, num_queries, cols.numel())
            positions = None
            if key_positions is not None and not bool(torch.isnan(key_positions[:, cols]).all()):
                positions = key_positions[:, cols]  # (B, L_part)
            parts.append((self.text_embedding(context[:, cols]), mask, positions))  # (B, L_part, dim)
        (text, mask, positions), gated_part = parts
        return text, mask, positions, GatedContext(*gated_part)

    def _vace_hints(
        self,
        vace_context: torch.Tensor,
        scale: float | torch.Tensor,
        reference_latents: torch.Tensor | None,
        x: torch.Tensor,
        frames: int,
        text: torch.Tensor,
        time_modulation: torch.Tensor,
        rope_cos: torch.Tensor,
        rope_sin: torch.Tensor,
        cross_args: tuple,
    ) -> dict[int, torch.Tensor]:
        if self.vace_blocks is None:
            raise ValueError("vace_context given but this WanDiT has no VACE branch (vace_layers is empty)")
        batch, _, _, height, width = vace_context.shape
        ref_frames = 0 if reference_latents is None else reference_latents.shape[2]
        if vace_context.shape[2] not in (frames, frames + ref_frames):
            raise ValueError(
                f"vace_context must cover the {frames} video frames (or {frames + ref_frames} with references), "
                f"got {vace_context.shape[2]} frames"
            )
        self._check("vace_context", vace_context, (x.shape[0], self.vace_in_channels, None, height, width))
        if reference_latents is not None and vace_context.shape[2] == frames:
            if self.vace_in_channels < self.out_channels:
                raise ValueError(
                    f"building reference context frames needs vace_in_channels >= out_channels, "
                    f"got {self.vace_in_channels} < {self.out_channels}; pass vace_context with the reference frames"
                )
            ref_context = torch.cat(
                [
                    reference_latents[:, : self.out_channels],
                    reference_latents.new_zeros(
                        batch, self.vace_in_channels - self.out_channels, ref_frames, height, width
                    ),
                ],
                dim=1,
            )
            vace_context = torch.cat([ref_context.to(vace_context.dtype), vace_context], dim=2)
        control = self.vace_patch_embedding(vace_context.to(x.dtype)).flatten(2).transpose(1, 2)  # (B, n, dim)
        control = F.pad(control, (0, 0, 0, x.shape[1] - control.shape[1]))  # zeros for extra tokens
        scales = torch.as_tensor(scale, dtype=torch.float32, device=x.device)
        if scales.ndim == 0:
            scales = scales.expand(len(self.vace_layers))
        if scales.shape != (len(self.vace_layers),):
            raise ValueError(
                f"vace_context_scale must be a scalar or have {len(self.vace_layers)} entries (one per VACE layer), "
                f"got shape {tuple(scales.shape)}"
            )
        hints = {}
        for layer, block, layer_scale in zip(self.vace_layers, self.vace_blocks, scales.unbind()):
            hint, control = self._run(block, control, x, text, time_modulation, rope_cos, rope_sin, *cross_args)
            hints[layer] = hint * layer_scale.to(hint.dtype)
        return hints
