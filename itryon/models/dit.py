"""The Wan2.1-family video DiT (with the optional VACE context branch), a :class:`~itryon.models.backbone.Backbone`.

With ``BackboneInputs(context)`` alone it computes what diffusers' ``WanTransformer3DModel`` computes; with a
``vace_context`` what ``WanVACETransformer3DModel`` computes with that control input. It accepts every kind of
conditioning input (reference frames, token residual, appended tokens, cross-attention mask, gated context;
context positions with a ``cross_attention_rope``, a VACE context with ``vace_layers``); each is absent by default
and then changes nothing.

``zero_init_gates=True`` makes the attention of every (main and VACE) block a
:class:`~itryon.models.gated_attention.GatedWanAttention`, so that the tokens that join a softmax (reference frames,
extra tokens, and the context tokens marked by ``BackboneInputs.context_gated``) start as an exact no-op on a
pretrained backbone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from itryon.models.attention import CrossAttentionInputs, GatedContext, SelfAttentionInputs, check_backend
from itryon.models.backbone import Backbone, BackboneInputs, shard_blocks
from itryon.models.blocks import VaceBlock, WanBlock
from itryon.models.context_parallel import ContextParallel, SequenceSlices
from itryon.models.embeddings import WanHead, timestep_sinusoid
from itryon.models.flops import dit_forward_flops
from itryon.models.gated_attention import GatedWanAttention
from itryon.models.precision import DTypeName
from itryon.models.rope import RotaryEmbedding3D, grid_positions
from itryon.models.vace import with_reference_context


class WanDiT(Backbone):
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
        cross_attention_rope: nn.Module | Callable[..., nn.Module] | None = None,
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

        self.cross_attention_rope = self._cross_attention_rope(cross_attention_rope)
        self.gradient_checkpointing = gradient_checkpointing
        self.context_parallel: ContextParallel | None = None  # enable_context_parallel
        self.init_weights()

    def _cross_attention_rope(self, rope: nn.Module | Callable[..., nn.Module] | None) -> nn.Module | None:
        """The rotary hook; a factory (a ``_partial_`` config) is built with this model's ``head_dim``."""
        head_dim = self.dim // self.num_heads
        if rope is not None and not isinstance(rope, nn.Module):
            rope = rope(head_dim=head_dim)
        if rope is not None and getattr(rope, "head_dim", head_dim) != head_dim:
            raise ValueError(
                f"cross_attention_rope has head_dim {rope.head_dim}, the backbone's heads have {head_dim} channels "
                f"(dim {self.dim} / num_heads {self.num_heads}); give it as a _partial_ entry so that it takes the "
                "backbone's"
            )
        return rope

    @property
    def accepts(self) -> frozenset[str]:  # type: ignore[override]
        kinds = {"context", "context_mask", "gated_context", "channels", "reference", "tokens", "residual"}
        if self.vace_blocks is not None:
            kinds.update(("vace", "vace_reference"))
        if self.cross_attention_rope is not None:
            kinds.add("context_positions")
        return frozenset(kinds)

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether every (main and VACE) block recomputes its activations in the backward pass."""
        return self._gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, enabled: bool) -> None:
        self._gradient_checkpointing = bool(enabled)
        for block in self._all_blocks():
            block.gradient_checkpointing = bool(enabled)

    def _all_blocks(self) -> list[WanBlock]:
        return [*self.blocks, *(self.vace_blocks or ())]

    def transformer_blocks(self) -> list[nn.Module]:
        return list(self._all_blocks())

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
            if isinstance(module, GatedWanAttention):
                nn.init.zeros_(module.gate)
        if self.vace_blocks is not None:
            for block in self.vace_blocks:
                for proj in (block.before_proj, block.after_proj):
                    if proj is not None:
                        nn.init.zeros_(proj.weight)
                        nn.init.zeros_(proj.bias)

    def set_attention_backend(self, backend: str) -> None:
        check_backend(backend)
        self.attention_backend = backend
        for block in self._all_blocks():
            block.self_attn.backend = backend
            block.cross_attn.backend = backend

    def parallelize(self, mesh=None, *, compile: bool = False, **fsdp) -> None:
        """torchtitan's order: activation checkpointing inside each block (``gradient_checkpointing``), each
        (main and VACE) block compiled, then FSDP2 ``fully_shard`` per block and the whole model last; embeddings
        and head stay eager."""
        shard_blocks(self, self._all_blocks(), mesh, compile=compile, **fsdp)

    def flops(self, latent_shape: Sequence[int], inputs: BackboneInputs) -> int:
        reference = inputs.reference_latents.shape[2] if inputs.reference_latents is not None else 0
        reference += inputs.stream_reference_frames
        latent_shape = (*latent_shape[:2], latent_shape[2] - inputs.stream_reference_frames, *latent_shape[3:])
        extra = inputs.extra_tokens.shape[1] if inputs.extra_tokens is not None else 0
        return dit_forward_flops(
            self,
            latent_shape,
            inputs.context.shape[1],
            reference_frames=reference,
            extra_tokens=extra,
            with_vace=inputs.vace_context is not None,
        )

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        in_channels: int | None = None,
        dtype: DTypeName | torch.dtype | None = "float32",
        **overrides,
    ) -> WanDiT:
        """Load a local diffusers-format or original-Wan-format checkpoint folder (see ``itryon.models.loading``).

        ``in_channels`` beyond the checkpoint's widen the patch embedding with zero-initialised input channels;
        ``dtype`` casts the weights (None keeps the checkpoint's); ``overrides`` set non-architecture arguments
        (attention_backend, gradient_checkpointing, cross_attention_rope, ...) and may restate architecture ones
        (checked against the checkpoint). ``zero_init_gates=True`` adds the attention gates, zero-initialised
        (reported as newly initialised by ``load_native_state``).
        """
        from itryon.models.loading import load_wan_dit

        return load_wan_dit(cls, path, in_channels=in_channels, dtype=dtype, **overrides)

    # ------------------------------------------------------------------ forward
    def _check(self, name: str, tensor: torch.Tensor, expected: tuple) -> None:
        shape = tuple(tensor.shape)
        if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
            shown = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
            raise ValueError(f"{name} must have shape {shown}, got {shape}")

    def forward(
        self,
        latents: torch.Tensor,  # (B, out_channels, F, H, W) noisy latents
        timestep: torch.Tensor,  # (B,) in [0, 1000]
        inputs: BackboneInputs,
    ) -> torch.Tensor:
        """Velocity (or whatever the head was trained for) ``(B, out_channels, F, H, W)`` for the video frames.

        ``channels`` are concatenated to ``latents`` (together ``in_channels``). ``reference_latents`` are
        prepended in time (RoPE frames ``0..R-1``, video frames from ``R``) and dropped from the output. When
        ``vace_context`` covers only the ``F`` video frames and references are given, the references' context
        frames are Wan-VACE's: the reference latent's first ``out_channels`` channels, then zeros. ``extra_tokens``
        join the sequence at ``extra_token_positions`` and are dropped from the output. ``context_positions`` feed
        ``cross_attention_rope``. ``context_mask[b, f]`` says which text tokens queries of latent frame ``f`` may
        attend; reference and extra tokens attend every text token.

        ``vace_reference`` (Wan-VACE's layout): the leading ``R`` frames of ``latents`` are the reference frames'
        positions in the main stream (noise while sampling) and enter as reference frames; the reference latents enter
        the VACE context only; the output covers all ``R + F`` frames, as the sampler integrates them all.

        With ``zero_init_gates``: reference and extra tokens reach the video tokens only through the gated
        self-attention branch, and the context tokens marked by ``context_gated`` only through the gated
        cross-attention branch (with their mask and positions). Without ``zero_init_gates`` every token joins one
        softmax, as in Wan / Wan-VACE.
        """
        self.check_inputs(inputs)
        weights = self.patch_embedding.weight.dtype
        if inputs.context.dtype != weights and weights.is_floating_point:  # e.g. a bf16 text encoder, fp32 weights
            inputs = inputs.replace(context=inputs.context.to(weights))
        stream_refs = inputs.stream_reference_frames
        if stream_refs:
            latents, inputs = self._stream_references(latents, inputs)
        x = inputs.with_channels(latents)  # (B, in_channels, F, H, W)
        layout = self._layout(x, timestep, inputs)
        tokens, positions, query_frames = self._embed_tokens(x, inputs, layout)  # 1. patch embedding
        rope_cos, rope_sin = self.rope(positions)  # (N, head_dim/2) each
        time_embedding, time_modulation = self._embed_time(timestep, inputs.context.dtype)  # 2. time embedding
        self_inputs = SelfAttentionInputs(rope_cos, rope_sin, self._video_span(tokens, layout))
        cross_inputs = self._cross_inputs(inputs, query_frames, tokens.shape[1], layout)  # 3. text embedding
        slices = None
        if self.context_parallel is not None:  # this rank's slice of the sequence
            slices, tokens, self_inputs, cross_inputs = self._slice_sequence(tokens, layout, self_inputs, cross_inputs)
        hints = self._vace_hints(inputs, tokens, layout, time_modulation, self_inputs, cross_inputs, slices)  # 4.
        for index, block in enumerate(self.blocks):  # 5. main blocks
            tokens = block(tokens, time_modulation, self_inputs, cross_inputs)
            if index in hints:
                tokens = tokens + hints[index]
        groups = (0, 1) if stream_refs else (1,)  # 6. head: the video tokens (and the reference positions)
        if slices is None:
            span = slice(0 if stream_refs else layout.num_ref, layout.video.stop)
            return self._unpatchify(self.head(tokens[:, span], time_embedding), layout, stream_refs)
        start, stop = slices.local_span(groups[0])[0], slices.local_span(1)[1]
        out = self.head(tokens[:, start:stop], time_embedding)
        out = slices.gather(out, groups, dim=1, group=self.context_parallel.group)
        return self._unpatchify(out, layout, stream_refs)

    def enable_context_parallel(self, parallel: ContextParallel) -> None:
        """Run every forward over ``parallel``'s group (:mod:`itryon.models.context_parallel`): reference frames,
        video tokens and appended tokens each need a multiple of the group's size, the heads one of its Ulysses
        degree."""
        parallel.check_heads(self.num_heads, type(self).__name__)
        self.context_parallel = parallel

    def _slice_sequence(
        self,
        tokens: torch.Tensor,  # (B, N, dim) the whole sequence
        layout: TokenLayout,
        self_inputs: SelfAttentionInputs,
        cross_inputs: CrossAttentionInputs,
    ) -> tuple[SequenceSlices, torch.Tensor, SelfAttentionInputs, CrossAttentionInputs]:
        """This rank's slice of the tokens and of every per-token input."""
        extra = tokens.shape[1] - layout.num_ref - layout.num_video
        slices = SequenceSlices.of(
            (layout.num_ref, layout.num_video, extra),
            self.context_parallel,
            ("the reference frames", "the video", "the appended tokens"),
        )
        self_inputs = SelfAttentionInputs(
            slices.split(self_inputs.rope_cos, 0),
            slices.split(self_inputs.rope_sin, 0),
            None if self_inputs.video_span is None else slices.local_span(1),
            self.context_parallel,
        )
        gated = cross_inputs.gated
        if gated is not None and gated.mask is not None:
            gated = dataclasses.replace(gated, mask=slices.split(gated.mask, 1))
        cross_inputs = dataclasses.replace(
            cross_inputs,
            query_frames=slices.split(cross_inputs.query_frames, 0),
            mask=None if cross_inputs.mask is None else slices.split(cross_inputs.mask, 1),
            gated=gated,
        )
        return slices, slices.split(tokens, 1), self_inputs, cross_inputs

    def _stream_references(self, latents: torch.Tensor, inputs: BackboneInputs) -> tuple[torch.Tensor, BackboneInputs]:
        """Wan-VACE's references: ``latents`` ``(B, C, R + F, H, W)`` -> the video frames, with the leading ``R``
        frames as reference frames of the main stream and ``vace_reference`` in front of the VACE context."""
        r = inputs.stream_reference_frames
        if inputs.reference_latents is not None or inputs.vace_context is None:
            raise ValueError("vace_reference needs a vace_context and excludes reference_latents")
        refs = F.pad(latents[:, :, :r], (0, 0, 0, 0, 0, 0, 0, self.in_channels - latents.shape[1]))  # (B, C_in, R, ..)
        video = latents[:, :, r:]
        context = with_reference_context(inputs.vace_context, inputs.vace_reference, video.shape[2], self.out_channels)
        return video, inputs.replace(reference_latents=refs, vace_reference=None, vace_context=context)

    def _layout(self, x: torch.Tensor, timestep: torch.Tensor, inputs: BackboneInputs) -> TokenLayout:
        batch, _, frames, height, width = x.shape
        pt, ph, pw = self.patch_size
        self._check(
            "latents" if inputs.channels is None else "latents + channels",
            x,
            (batch, self.in_channels, None, None, None),
        )
        if frames % pt or height % ph or width % pw:
            raise ValueError(
                f"latents (F, H, W) = {(frames, height, width)} must be divisible by patch_size {self.patch_size}"
            )
        self._check("timestep", timestep, (batch,))
        self._check("context", inputs.context, (batch, None, self.text_dim))
        ref_frames = 0
        if inputs.reference_latents is not None:
            self._check("reference_latents", inputs.reference_latents, (batch, self.in_channels, None, height, width))
            if inputs.reference_latents.shape[2] % pt:
                raise ValueError(
                    f"reference_latents frames ({inputs.reference_latents.shape[2]}) must be divisible by {pt}"
                )
            ref_frames = inputs.reference_latents.shape[2] // pt
        return TokenLayout(batch, frames, height, width, height // ph, width // pw, frames // pt, ref_frames)

    def _embed_tokens(
        self, x: torch.Tensor, inputs: BackboneInputs, layout: TokenLayout
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tokens ``(B, N, dim)`` of [reference frames, video frames, extra tokens], their RoPE positions ``(N, 3)``
        and the latent frame of each as a cross-attention query ``(N,)`` (-1: not a video token)."""
        device = x.device
        stacked = x
        if inputs.reference_latents is not None:
            stacked = torch.cat([inputs.reference_latents.to(x.dtype), x], dim=2)
        tokens = self.patch_embedding(stacked).flatten(2).transpose(1, 2).contiguous()  # (B, (R'+F') h w, dim)
        num_ref, num_video = layout.num_ref, layout.num_video
        if inputs.token_residual is not None:
            self._check("token_residual", inputs.token_residual, (layout.batch, num_video, self.dim))
            tokens = torch.cat(
                [tokens[:, :num_ref], tokens[:, num_ref:] + inputs.token_residual.to(tokens.dtype)], dim=1
            )
        positions = grid_positions(layout.ref_frames + layout.video_frames, layout.grid_h, layout.grid_w, device=device)
        query_frames = torch.cat(
            [
                torch.full((num_ref,), -1, dtype=torch.long, device=device),
                torch.arange(layout.video_frames, device=device).repeat_interleave(layout.tokens_per_frame),
            ]
        )  # (N,)
        extra, extra_positions = inputs.extra_tokens, inputs.extra_token_positions
        if extra is None:
            if extra_positions is not None:
                raise ValueError("extra_token_positions given without extra_tokens")
            return tokens, positions, query_frames
        if extra_positions is None:
            raise ValueError("extra_tokens need extra_token_positions (M, 3) long (t, h, w) RoPE positions")
        self._check("extra_tokens", extra, (layout.batch, None, self.dim))
        self._check("extra_token_positions", extra_positions, (extra.shape[1], 3))
        tokens = torch.cat([tokens, extra.to(tokens.dtype)], dim=1)
        positions = torch.cat([positions, extra_positions.to(device=device, dtype=torch.long)])
        query_frames = torch.cat([query_frames, torch.full((extra.shape[1],), -1, dtype=torch.long, device=device)])
        return tokens, positions, query_frames

    def _embed_time(self, timestep: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Time embedding ``(B, dim)`` and the blocks' modulation ``(B, 6, dim)``."""
        time_dtype = self.time_embedding[0].weight.dtype
        time_embedding = self.time_embedding(timestep_sinusoid(timestep, self.freq_dim).to(time_dtype)).to(dtype)
        return time_embedding, self.time_projection(time_embedding).unflatten(1, (6, self.dim))

    def _video_span(self, tokens: torch.Tensor, layout: TokenLayout) -> tuple[int, int] | None:
        """With gates and side tokens (reference frames, extra tokens): the video tokens' ``[start, end)``."""
        if self.zero_init_gates and tokens.shape[1] > layout.num_video:
            return (layout.num_ref, layout.num_ref + layout.num_video)
        return None

    def _cross_inputs(
        self, inputs: BackboneInputs, query_frames: torch.Tensor, num_queries: int, layout: TokenLayout
    ) -> CrossAttentionInputs:
        """Embedded text, the per-query mask, the rotary key positions and (with gates) the gated branch."""
        context = inputs.context
        cross_mask = None
        if inputs.context_mask is not None:
            self._check("context_mask", inputs.context_mask, (layout.batch, layout.video_frames, context.shape[1]))
            rows = inputs.context_mask.to(torch.bool)[:, query_frames.clamp(min=0)]  # (B, N, L)
            cross_mask = rows | (query_frames < 0)[None, :, None]
        key_positions = None
        if inputs.context_positions is not None:
            self._check("context_positions", inputs.context_positions, (layout.batch, context.shape[1]))
            key_positions = inputs.context_positions
        gated = inputs.context_gated
        if gated is not None:
            self._check("context_gated", gated, (layout.batch, context.shape[1]))
        rope = self.cross_attention_rope
        if not (self.zero_init_gates and gated is not None and bool(gated.any())):
            return CrossAttentionInputs(self.text_embedding(context), query_frames, cross_mask, rope, key_positions)
        text, cross_mask, key_positions, branch = self._split_context(
            context, gated, cross_mask, key_positions, num_queries
        )
        return CrossAttentionInputs(text, query_frames, cross_mask, rope, key_positions, branch)

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
        inputs: BackboneInputs,
        tokens: torch.Tensor,  # (B, N, dim) embedded main stream
        layout: TokenLayout,
        time_modulation: torch.Tensor,
        self_inputs: SelfAttentionInputs,
        cross_inputs: CrossAttentionInputs,
        slices: SequenceSlices | None = None,
    ) -> dict[int, torch.Tensor]:
        """One hint ``(B, N, dim)`` per main block in ``vace_layers`` from the VACE context branch (this rank's
        slice of the sequence under context parallelism)."""
        if inputs.vace_context is None:
            return {}
        vace_context = self._reference_context(inputs, layout)  # (B, vace_in_channels, R + F, H, W)
        control = self.vace_patch_embedding(vace_context.to(tokens.dtype)).flatten(2).transpose(1, 2)  # (B, n, dim)
        whole = tokens.shape[1] if slices is None else sum(slices.sizes)
        control = F.pad(control, (0, 0, 0, whole - control.shape[1]))  # zeros for extra tokens
        if slices is not None:
            control = slices.split(control, 1)
        scales = torch.as_tensor(inputs.vace_context_scale, dtype=torch.float32, device=tokens.device)
        if scales.ndim == 0:
            scales = scales.expand(len(self.vace_layers))
        if scales.shape != (len(self.vace_layers),):
            raise ValueError(
                f"vace_context_scale must be a scalar or have {len(self.vace_layers)} entries (one per VACE layer), "
                f"got shape {tuple(scales.shape)}"
            )
        hints = {}
        for layer, block, layer_scale in zip(self.vace_layers, self.vace_blocks, scales.unbind()):
            hint, control = block(control, tokens, time_modulation, self_inputs, cross_inputs)
            hints[layer] = hint * layer_scale.to(hint.dtype)
        return hints

    def _reference_context(self, inputs: BackboneInputs, layout: TokenLayout) -> torch.Tensor:
        """The VACE context with the reference frames' context in front (Wan-VACE's layout when it lacks them)."""
        self._check(
            "vace_context",
            inputs.vace_context,
            (layout.batch, self.vace_in_channels, None, layout.height, layout.width),
        )
        return with_reference_context(inputs.vace_context, inputs.reference_latents, layout.frames, self.out_channels)

    def _unpatchify(self, out: torch.Tensor, layout: TokenLayout, ref_frames: int = 0) -> torch.Tensor:
        """Head output ``(B, N, C_out * pt ph pw)`` of the video tokens (and ``ref_frames`` reference latent frames
        before them) -> ``(B, out_channels, R + F, H, W)``."""
        pt, ph, pw = self.patch_size
        frames = layout.video_frames + ref_frames // pt
        out = out.reshape(layout.batch, frames, layout.grid_h, layout.grid_w, pt, ph, pw, self.out_channels)
        out = out.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, F', pt, h, ph, w, pw)
        return out.reshape(layout.batch, self.out_channels, layout.frames + ref_frames, layout.height, layout.width)


@dataclass(frozen=True)
class TokenLayout:
    """Where the tokens of one forward pass come from: the latent grid, its patch grid and the reference frames."""

    batch: int
    frames: int  # latent frames F
    height: int  # latent H
    width: int  # latent W
    grid_h: int  # H / ph
    grid_w: int  # W / pw
    video_frames: int  # F / pt
    ref_frames: int  # reference patch frames R'

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_h * self.grid_w

    @property
    def num_ref(self) -> int:
        return self.ref_frames * self.tokens_per_frame

    @property
    def num_video(self) -> int:
        return self.video_frames * self.tokens_per_frame

    @property
    def video(self) -> slice:
        return slice(self.num_ref, self.num_ref + self.num_video)
