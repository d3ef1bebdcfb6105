"""Analytic forward FLOPs of a WanDiT (matrix multiplications and attention; 1 multiply-add = 2 FLOPs).

Norms, activations, RoPE and modulation arithmetic are elementwise and omitted (well under 1% at Wan sizes).
Backward is conventionally counted as 2x forward, so a training step is ``3 * dit_forward_flops(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_FIELDS = ("in_channels", "out_channels", "patch_size", "dim", "ffn_dim", "num_layers", "text_dim", "freq_dim")
_DEFAULTS = dict(
    in_channels=16,
    out_channels=16,
    patch_size=(1, 2, 2),
    text_dim=4096,
    freq_dim=256,
    vace_layers=None,
    vace_in_channels=96,
)


def _config(model_or_config: Any) -> dict[str, Any]:
    if isinstance(model_or_config, Mapping):
        config = {**_DEFAULTS, **{k: v for k, v in model_or_config.items() if k != "_target_"}}
    else:
        config = {k: getattr(model_or_config, k) for k in (*_FIELDS, "vace_layers", "vace_in_channels")}
    missing = [k for k in _FIELDS if k not in config]
    if missing:
        raise KeyError(f"WanDiT config lacks {missing} needed to count FLOPs")
    return config


def _block_flops(tokens: int, text_len: int, dim: int, ffn_dim: int) -> int:
    self_attention = 4 * 2 * tokens * dim * dim + 2 * 2 * tokens * tokens * dim
    cross_attention = 2 * 2 * tokens * dim * dim + 2 * 2 * text_len * dim * dim + 2 * 2 * tokens * text_len * dim
    ffn = 2 * 2 * tokens * dim * ffn_dim
    return self_attention + cross_attention + ffn


def dit_forward_flops(
    model_or_config: Any,
    latent_shape: Sequence[int],
    text_len: int,
    *,
    reference_frames: int = 0,
    extra_tokens: int = 0,
    with_vace: bool | None = None,
) -> int:
    """Forward FLOPs for latents ``(B, C, F, H, W)`` or ``(C, F, H, W)`` (batch 1) and ``text_len`` text tokens.

    ``model_or_config``: a WanDiT or a mapping of its constructor arguments. ``with_vace`` defaults to
    "the model has a VACE branch".
    """
    shape = tuple(int(s) for s in latent_shape)
    if len(shape) == 4:
        shape = (1, *shape)
    if len(shape) != 5:
        raise ValueError(f"latent_shape must be (B, C, F, H, W) or (C, F, H, W), got {tuple(latent_shape)}")
    batch, _, frames, height, width = shape
    config = _config(model_or_config)
    pt, ph, pw = (int(p) for p in config["patch_size"])
    dim, ffn_dim = int(config["dim"]), int(config["ffn_dim"])
    patch_volume = pt * ph * pw
    per_frame = (height // ph) * (width // pw)
    video_tokens = (frames // pt) * per_frame
    grid_tokens = video_tokens + (reference_frames // pt) * per_frame
    tokens = grid_tokens + extra_tokens
    vace_layers = list(config.get("vace_layers") or [])
    use_vace = bool(vace_layers) if with_vace is None else with_vace and bool(vace_layers)

    flops = 2 * grid_tokens * config["in_channels"] * patch_volume * dim  # patch embedding
    flops += 2 * text_len * (config["text_dim"] * dim + dim * dim)  # text embedding
    flops += 2 * (config["freq_dim"] * dim + dim * dim + dim * 6 * dim)  # time embedding and projection
    flops += config["num_layers"] * _block_flops(tokens, text_len, dim, ffn_dim)
    if use_vace:
        flops += 2 * grid_tokens * config["vace_in_channels"] * patch_volume * dim
        flops += len(vace_layers) * (_block_flops(tokens, text_len, dim, ffn_dim) + 2 * tokens * dim * dim)
        flops += 2 * tokens * dim * dim  # the first context block's input projection
    flops += 2 * video_tokens * dim * config["out_channels"] * patch_volume  # head
    return int(batch * flops)


__all__ = ["dit_forward_flops"]
