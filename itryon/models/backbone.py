"""The backbone seam: the kinds of conditioning a denoising backbone accepts, the one object that carries them, and
the interface every backbone implements.

The conditioning stack turns a batch into :class:`BackboneInputs`; the training module calls
``backbone(latents, timestep, inputs)`` and nothing else, asks the backbone for its FLOPs and lets it apply its own
parallelisation plan. The stack never names a backbone's keyword arguments and the module never checks a
backbone's class. Each kind is one or two fields of :class:`BackboneInputs`:

=================  =============================  =============================================================
kind               field(s)                       meaning
=================  =============================  =============================================================
context            ``context``                    ``(B, L, D)`` keys and values of the text cross-attention
context_positions  ``context_positions``          ``(B, L)`` float rotary positions of the context (NaN: none)
context_mask       ``context_mask``               ``(B, F, L)`` bool: the context tokens latent frame ``f`` reads
gated_context      ``context_gated``              ``(B, L)`` bool: context tokens of a zero-initialised branch
channels           ``channels``                   ``(B, C_extra, F, h, w)`` concatenated to the noisy latents
vace               ``vace_context`` (+ scale)     ``(B, C_vace, F, h, w)`` input of a VACE context branch
reference          ``reference_latents``          ``(B, C_in, R, h, w)`` frames prepended in time, not returned
vace_reference     ``vace_reference``             ``(B, C, R, h, w)`` reference latents of the VACE context only;
                                                  the latents' leading ``R`` frames are their main-stream
                                                  positions (Wan-VACE: noise there), returned with the output
tokens             ``extra_tokens`` (+ positions) ``(B, M, dim)`` tokens appended to the sequence, ``(M, 3)`` RoPE
residual           ``token_residual``             ``(B, N, dim)`` added to the patch-embedded video tokens
=================  =============================  =============================================================

A backbone declares the kinds it accepts in :attr:`Backbone.accepts`; an adapter asking for another kind fails
when the model is built (:meth:`itryon.conditioning.ConditioningStack.check_backbone`) and inputs of another
kind fail in :meth:`Backbone.check_inputs`.

A backbone config is usually a ``_partial_`` entry: the training module completes it with the channel counts
that follow from the VAE and the conditioning, ``in_channels`` (latent channels + ``channels`` conditions),
``out_channels`` (latent channels) and, when a conditioning gives a VACE context, ``vace_in_channels``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

KINDS = (
    "context", "context_positions", "context_mask", "gated_context",
    "channels", "vace", "reference", "vace_reference", "tokens", "residual",
)  # fmt: skip
# kind -> the BackboneInputs field whose presence means an input of that kind
KIND_FIELDS = {
    "context_positions": "context_positions",
    "context_mask": "context_mask",
    "gated_context": "context_gated",
    "channels": "channels",
    "vace": "vace_context",
    "reference": "reference_latents",
    "vace_reference": "vace_reference",
    "tokens": "extra_tokens",
    "residual": "token_residual",
}
# constructor arguments a _partial_ backbone config leaves to the training module (out_channels it may state)
DERIVED_ARGUMENTS = ("in_channels", "vace_in_channels")


@dataclass(frozen=True)
class BackboneInputs:
    """Everything a backbone reads besides the noisy latents and the timestep (see the module docstring)."""

    context: torch.Tensor  # (B, L, D)
    context_positions: torch.Tensor | None = None  # (B, L) float, NaN = not rotated
    context_mask: torch.Tensor | None = None  # (B, F, L) bool, True = may attend
    context_gated: torch.Tensor | None = None  # (B, L) bool, True = token of a gated adapter
    channels: torch.Tensor | None = None  # (B, C_extra, F, h, w)
    vace_context: torch.Tensor | None = None  # (B, C_vace, F or R + F, h, w)
    vace_context_scale: float | torch.Tensor = 1.0  # scalar or one per VACE layer
    reference_latents: torch.Tensor | None = None  # (B, C_in, R, h, w)
    vace_reference: torch.Tensor | None = None  # (B, C, R, h, w), the latents' first R frames are their positions
    token_residual: torch.Tensor | None = None  # (B, N_video, dim)
    extra_tokens: torch.Tensor | None = None  # (B, M, dim)
    extra_token_positions: torch.Tensor | None = None  # (M, 3) long (t, h, w)

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds present (``context`` always)."""
        return frozenset({"context"} | {kind for kind, name in KIND_FIELDS.items() if getattr(self, name) is not None})

    def with_channels(self, latents: torch.Tensor) -> torch.Tensor:
        """``(B, C, F, h, w)`` noisy latents -> ``(B, C + C_extra, F, h, w)`` with the ``channels`` conditions."""
        if self.channels is None:
            return latents
        return torch.cat([latents, self.channels.to(latents.dtype)], dim=1)

    @property
    def stream_reference_frames(self) -> int:
        """``R``: leading latent frames of the main stream that hold the ``vace_reference`` frames (0 without)."""
        return 0 if self.vace_reference is None else int(self.vace_reference.shape[2])

    def replace(self, **changes) -> BackboneInputs:
        return dataclasses.replace(self, **changes)


class Backbone(nn.Module):
    """Base class of a denoising backbone: ``forward(latents, timestep, inputs) -> (B, out_channels, F, h, w)``.

    ``latents`` ``(B, out_channels, F, h, w)`` are the noisy latents (the ``channels`` conditions are in
    ``inputs``), ``timestep`` ``(B,)`` the model timesteps in [0, 1000]. Subclasses set ``in_channels`` and
    ``out_channels``, declare :attr:`accepts`, and may count their :meth:`flops`, list their
    :meth:`transformer_blocks` and give a :meth:`parallelize` plan (the default compiles and shards the backbone as
    one unit).
    """

    accepts: frozenset[str] = frozenset({"context"})
    in_channels: int
    out_channels: int

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, inputs: BackboneInputs) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(latents, timestep, inputs)")

    def check_inputs(self, inputs: BackboneInputs) -> None:
        """Raise naming the kinds of ``inputs`` that this backbone does not accept."""
        if not isinstance(inputs, BackboneInputs):
            raise TypeError(
                f"{type(self).__name__} is called as (latents, timestep, BackboneInputs(context, ...)); got a "
                f"{type(inputs).__name__} as the third argument"
            )
        refused = sorted(inputs.kinds - self.accepts)
        if refused:
            fields = [KIND_FIELDS.get(kind, kind) for kind in refused]
            raise ValueError(
                f"{type(self).__name__} does not accept {refused} inputs (BackboneInputs.{', '.join(fields)}); it "
                f"accepts {sorted(self.accepts)}"
            )

    def transformer_blocks(self) -> list[nn.Module]:
        """The repeated blocks (their weight matrices are what a matrix optimiser such as Muon trains); none by
        default."""
        return []

    def flops(self, latent_shape: Sequence[int], inputs: BackboneInputs) -> int | None:
        """Forward FLOPs for noisy latents of ``latent_shape`` ``(B, C, F, h, w)`` and ``inputs``; None if unknown."""
        return None

    def parallelize(self, mesh=None, *, compile: bool = False, **fsdp) -> None:
        """Apply the parallelisation plan: ``torch.compile`` (``compile``), then FSDP2 over ``mesh`` (a data-parallel
        ``DeviceMesh``, 2-D for HSDP; None: one process) with ``fsdp`` as further ``fully_shard`` arguments
        (``mp_policy``, ``reshard_after_forward``). The default treats the whole backbone as one unit."""
        if compile:
            self.compile()
        if mesh is not None:
            from torch.distributed.fsdp import fully_shard

            fully_shard(self, mesh=mesh, **fsdp)

    def enable_context_parallel(self, parallel) -> None:
        """Split every forward's token sequence over ``parallel``'s group
        (:class:`~itryon.models.context_parallel.ContextParallel`); a backbone without a plan for it refuses."""
        raise NotImplementedError(
            f"{type(self).__name__} has no context-parallel plan (WanDiT has one); set "
            "model.parallel.context_parallel to 1"
        )


def shard_blocks(root: nn.Module, blocks: Sequence[nn.Module], mesh, *, compile: bool = False, **fsdp) -> None:
    """torchtitan's plan for a stack of blocks: each block compiled (``compile``), then FSDP2 ``fully_shard`` per
    block and the root last, over ``mesh`` (None: no sharding; 2-D: HSDP) with the ``fully_shard`` arguments
    ``fsdp``. Activation checkpointing is the block's own switch, applied inside the compiled call."""
    if compile:
        for block in blocks:
            block.compile()
    if mesh is None:
        return
    from torch.distributed.fsdp import fully_shard

    for block in blocks:
        fully_shard(block, mesh=mesh, **fsdp)
    fully_shard(root, mesh=mesh, **fsdp)
