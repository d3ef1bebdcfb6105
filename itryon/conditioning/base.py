"""The conditioning adapter interface: what an adapter reads, what kind of output it produces, how it trains.

An adapter turns batch keys into one output routed by kind (see :class:`~itryon.conditioning.stack.ConditioningStack`):

=========  ==============================  =====================================================================
kind       value                           goes to
=========  ==============================  =====================================================================
channels   ``(B, C_a, F, h, w)``           concatenated to the noisy latents (patch-embedding input channels)
vace       ``(B, C_a, F, h, w)``           concatenated into the VACE context of the context branch
reference  ``(B, C, R, h, w)``             latent frames prepended in time (dropped from the output)
vace_ref   ``(B, C, R, h, w)``             kind ``vace_reference``: reference frames of the VACE context only, the
                                           main stream holding noise at their positions (Wan-VACE's layout)
tokens     ``(B, M, dim)`` + ``(M, 3)``    tokens appended to the video sequence with their own (t, h, w) RoPE
residual   ``(B, N, dim)``                 added to the patch-embedded video tokens (``N = F' * H' * W'``)
context    ``(B, L, D)`` (+ positions,     keys/values of the text cross-attention; positions ``(B, L)`` float
           mask)                           (NaN = not rotated), mask ``(B, F, L)`` bool (per latent frame)
=========  ==============================  =====================================================================

A ``context`` adapter declared ``gated=True`` has its tokens marked in ``BackboneInputs.context_gated``: with a
``WanDiT(zero_init_gates=True)`` they go through the zero-initialised gated cross-attention branch (an exact no-op
at init), otherwise they join the one softmax like every other context token. Reference frames and tokens need no
declaration: with ``zero_init_gates`` the backbone always gates them.

Each adapter names the kinds of backbone input its outputs need (:attr:`ConditioningAdapter.backbone_kinds`, the
kinds of :mod:`itryon.models.backbone`); the stack checks them against the backbone when the model is built.

Each adapter applies its own *null* condition to the samples whose ``keep`` flag is False (classifier-free
guidance dropout decided by the stack): e.g. a grey video, the empty caption, or an exact zero residual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from itryon.cache.lookup import cached_encode

OUTPUT_KINDS = ("channels", "vace", "reference", "vace_reference", "tokens", "residual", "context")
LATENT_KINDS = ("channels", "vace", "reference", "vace_reference")


@dataclass(frozen=True)
class ConditionEnv:
    """What every adapter may use besides the batch: the frozen VAE and the target latent shape."""

    vae: nn.Module
    latent_shape: tuple[int, int, int, int, int]  # (B, C, F, h, w)

    @property
    def spatial_compression(self) -> int:
        return int(self.vae.spatial_compression)

    @property
    def temporal_compression(self) -> int:
        return int(self.vae.temporal_compression)

    @property
    def pixel_size(self) -> tuple[int, int]:
        """``(H, W)`` of the pixel video the latents come from."""
        _, _, _, h, w = self.latent_shape
        return h * self.spatial_compression, w * self.spatial_compression


@dataclass
class AdapterOutput:
    """One adapter's contribution; ``positions`` and ``mask`` only for the kinds that use them.

    ``estimate`` is an optional first guess of the clean latents ``(B, C, F, h, w)`` (e.g. the person's kept region),
    which a module predicting the clean sample as a residual adds to the backbone's output; one adapter at most
    gives it.
    """

    kind: str
    value: torch.Tensor
    positions: torch.Tensor | None = None  # tokens: (M, 3) long; context: (B, L) float
    mask: torch.Tensor | None = None  # context: (B, F, L) bool
    estimate: torch.Tensor | None = None  # (B, C, F, h, w) clean-latent estimate


class ConditioningAdapter(nn.Module):
    """Base class of a condition: declares its batch keys, output kind, trainability and CFG drop probability.

    Subclasses implement ``forward(batch, env, keep) -> AdapterOutput`` where ``keep`` ``(B,)`` bool says
    which samples keep the condition (the others get the adapter's null condition). Adapters of the latent
    kinds also set ``out_channels`` (channels they contribute). ``gated`` (context adapters only) routes the
    adapter's context tokens through the backbone's gated cross-attention branch (see the module docstring).
    """

    def __init__(
        self, input_keys: Sequence[str], output_kind: str, *, trainable: bool, drop_prob: float, gated: bool = False
    ) -> None:
        super().__init__()
        if output_kind not in OUTPUT_KINDS:
            raise ValueError(f"{type(self).__name__}: output kind must be one of {OUTPUT_KINDS}, got {output_kind!r}")
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"{type(self).__name__}: drop_prob must lie in [0, 1], got {drop_prob}")
        if gated and output_kind != "context":
            raise ValueError(
                f"{type(self).__name__}: gated=True applies to 'context' outputs only, got kind {output_kind!r} "
                "(reference frames and tokens are gated by the backbone's zero_init_gates)"
            )
        self.input_keys = tuple(input_keys)
        self.output_kind = output_kind
        self.trainable = trainable
        self.drop_prob = float(drop_prob)
        self.gated = bool(gated)
        self.out_channels = 0

    @property
    def backbone_kinds(self) -> frozenset[str]:
        """The kinds of backbone input (:data:`itryon.models.backbone.KINDS`) this adapter's outputs need."""
        return frozenset({self.output_kind, *(("gated_context",) if self.gated else ())})

    def bind(self, adapters: Mapping[str, ConditioningAdapter]) -> None:
        """Called once by the stack with all adapters (e.g. to share a text encoder); a no-op by default."""

    def forward(self, batch: Mapping[str, Any], env: ConditionEnv, keep: torch.Tensor) -> AdapterOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(batch, env, keep)")

    def extra_repr(self) -> str:
        return (
            f"keys={list(self.input_keys)}, kind={self.output_kind}, trainable={self.trainable}, "
            f"drop_prob={self.drop_prob}" + (", gated=True" if self.gated else "")
        )


# ----------------------------------------------------------------------------------------------------
# helpers shared by adapters


def where_keep(x: torch.Tensor, keep: torch.Tensor, null: float | torch.Tensor = 0.0) -> torch.Tensor:
    """``x`` for kept samples, ``null`` for dropped ones; ``keep`` ``(B,)`` bool broadcast over ``x``'s trailing dims."""
    k = keep.to(x.device).view(-1, *([1] * (x.ndim - 1)))
    null_t = torch.as_tensor(null, dtype=x.dtype, device=x.device)
    return torch.where(k, x, null_t)


@torch.no_grad()
def encode_video(vae: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """Frozen VAE encoding of ``video`` ``(B, 3, T, H, W)`` -> latents ``(B, C, F, h, w)``, served from the latent
    cache where one is attached (:mod:`itryon.cache`)."""
    param = next(iter(vae.parameters()), None)
    if param is not None:
        video = video.to(device=param.device, dtype=param.dtype)
    return cached_encode(vae, video)


def fold_mask(mask: torch.Tensor, latent_frames: int, spatial_compression: int) -> torch.Tensor:
    """Wan2.1-VACE mask folding: ``(B, 1, T, H, W)`` -> ``(B, s * s, F, H / s, W / s)``.

    Each ``s x s`` pixel block becomes ``s * s`` channels (row-major inside the block) and time is resampled to
    the latent frames with ``nearest-exact`` interpolation, so pretrained VACE weights read the same layout.
    """
    b, c, t, h, w = mask.shape
    s = spatial_compression
    if c != 1 or h % s or w % s:
        raise ValueError(f"mask must be (B, 1, T, H, W) with H and W divisible by {s}, got {tuple(mask.shape)}")
    folded = F.pixel_unshuffle(mask.transpose(1, 2).reshape(b * t, 1, h, w), s)  # (B*T, s*s, h, w)
    folded = folded.view(b, t, s * s, h // s, w // s).transpose(1, 2)  # (B, s*s, T, h, w)
    return F.interpolate(folded, size=(latent_frames, h // s, w // s), mode="nearest-exact")


def zero_linear(in_features: int, out_features: int) -> nn.Linear:
    """A linear layer with zero weight and bias: a new injection path that starts as an exact no-op."""
    layer = nn.Linear(in_features, out_features)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def check_token_grid(grid: Sequence[int], env: ConditionEnv, patch_size: Sequence[int], who: str) -> None:
    """Raise unless token grid ``(F', H', W')`` is the backbone's for ``env``'s latents and ``patch_size``."""
    _, _, f, h, w = env.latent_shape
    pt, ph, pw = patch_size
    expected = (f // pt, h // ph, w // pw)
    if tuple(grid) != expected:
        raise ValueError(
            f"{who}: the condition video maps to token grid (F', H', W') = {tuple(grid)} but the backbone's grid for "
            f"latents {env.latent_shape} and patch {tuple(patch_size)} is {expected}"
        )
