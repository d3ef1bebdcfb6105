"""diffusers' ``WanVACETransformer3DModel`` as a backbone, for runs that want diffusers' attention backends and
parallelism and need only the kinds of conditioning input it can take.

It accepts ``context`` (plain cross-attention: no rotary positions, no mask, no gated branch), ``channels`` (a
wider patch embedding), ``vace`` (its control branch) and ``reference`` (latent frames prepended in time, as
diffusers' Wan-VACE pipeline prepends reference images, and dropped from the output). Appended tokens, token
residuals, A-RoPE positions, per-frame context masks and gated context need hooks inside the transformer that
diffusers does not have: adapters that give them fail when the model is built. Without a ``vace`` input the
control branch runs on zeros with scale 0 (diffusers' model always runs it), which leaves the output exactly that
of the model without the branch.

The constructor takes :class:`~itryon.models.WanDiT`'s names (a config swaps the ``_target_``), and
``to_diffusers_names(wan_dit.state_dict())`` (:mod:`itryon.models.loading`) loads a WanDiT's weights into
``transformer``: with the same weights both backbones compute the same output.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from itryon.models.backbone import Backbone, BackboneInputs, shard_blocks
from itryon.models.flops import dit_forward_flops
from itryon.models.precision import DTypeName, as_dtype
from itryon.models.vace import with_reference_context

# the shape arguments, in WanDiT's names, and diffusers' config key of each
_CONFIG_KEYS = {
    "in_channels": "in_channels", "out_channels": "out_channels", "patch_size": "patch_size", "ffn_dim": "ffn_dim",
    "num_layers": "num_layers", "num_heads": "num_attention_heads", "text_dim": "text_dim", "freq_dim": "freq_dim",
    "eps": "eps", "cross_attn_norm": "cross_attn_norm", "rope_max_seq_len": "rope_max_seq_len",
    "vace_layers": "vace_layers", "vace_in_channels": "vace_in_channels",
}  # fmt: skip


class DiffusersWanVACE(Backbone):
    """``transformer``: a diffusers ``WanVACETransformer3DModel``, called as the backbone seam asks.

    ``attention_backend`` names one of diffusers' attention backends (``diffusers.attention_dispatch``; None keeps
    its default, torch's SDPA); ``gradient_checkpointing`` is diffusers' own.
    """

    accepts = frozenset({"context", "channels", "vace", "reference", "vace_reference"})

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
        vace_layers: Sequence[int] = (0, 5, 10, 15, 20, 25),
        vace_in_channels: int = 96,
        gradient_checkpointing: bool = False,
        attention_backend: str | None = None,
    ):
        super().__init__()
        from diffusers import WanVACETransformer3DModel

        if dim % num_heads != 0:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        transformer = WanVACETransformer3DModel(
            patch_size=tuple(int(p) for p in patch_size), num_attention_heads=num_heads, attention_head_dim=dim // num_heads,
            in_channels=in_channels, out_channels=out_channels, text_dim=text_dim, freq_dim=freq_dim, ffn_dim=ffn_dim,
            num_layers=num_layers, cross_attn_norm=cross_attn_norm, eps=eps, rope_max_seq_len=rope_max_seq_len,
            vace_layers=[int(i) for i in vace_layers], vace_in_channels=vace_in_channels,
        )  # fmt: skip
        self._adopt(transformer, gradient_checkpointing, attention_backend)

    def _adopt(self, transformer: nn.Module, gradient_checkpointing: bool, attention_backend: str | None) -> None:
        self.transformer = transformer
        config = transformer.config
        self.in_channels, self.out_channels = int(config.in_channels), int(config.out_channels)
        self.vace_in_channels = int(config.vace_in_channels)
        self.vace_layers = [int(i) for i in config.vace_layers]
        self.dim = int(config.num_attention_heads * config.attention_head_dim)
        if gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        if attention_backend is not None:
            transformer.set_attention_backend(attention_backend)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        in_channels: int | None = None,
        dtype: DTypeName | torch.dtype | None = "float32",
        gradient_checkpointing: bool = False,
        attention_backend: str | None = None,
        **shape,
    ) -> DiffusersWanVACE:
        """A local diffusers ``WanVACETransformer3DModel`` folder (or a pipeline folder with ``transformer/``); never
        downloads. ``in_channels`` beyond the checkpoint's are new zero-initialised patch-embedding channels;
        ``shape`` (WanDiT's names, e.g. from a model config) must agree with the checkpoint."""
        from diffusers import WanVACETransformer3DModel

        from itryon.models.loading import resolve_folder

        folder = resolve_folder(Path(path))
        dtype = None if dtype is None else as_dtype(dtype, "DiffusersWanVACE.from_pretrained dtype")
        transformer = WanVACETransformer3DModel.from_pretrained(folder, local_files_only=True, torch_dtype=dtype)
        _check_shape(folder, transformer.config, shape)
        extra = 0 if in_channels is None else int(in_channels) - int(transformer.config.in_channels)
        if extra < 0:
            raise ValueError(
                f"{folder}: in_channels={in_channels} is fewer than the checkpoint's {transformer.config.in_channels}"
            )
        if extra:
            _widen_patch_embedding(transformer, extra)
        model = cls.__new__(cls)
        Backbone.__init__(model)
        model._adopt(transformer, gradient_checkpointing, attention_backend)
        model.source = str(folder)  # where its weights come from (the export lists it for the tensors that stay frozen)
        return model

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, inputs: BackboneInputs) -> torch.Tensor:
        """``(B, out_channels, F, H, W)`` for noisy latents of the same shape (see :class:`Backbone`)."""
        self.check_inputs(inputs)
        weights = self.transformer.patch_embedding.weight.dtype
        if inputs.context.dtype != weights and weights.is_floating_point:  # e.g. a bf16 text encoder, fp32 weights
            inputs = inputs.replace(context=inputs.context.to(weights))
        r = inputs.stream_reference_frames
        if r:  # Wan-VACE's layout, as diffusers' pipeline feeds it: the stream's first R frames are the references'
            if inputs.reference_latents is not None or inputs.vace_context is None:
                raise ValueError("vace_reference needs a vace_context and excludes reference_latents")
            video = inputs.with_channels(latents[:, :, r:])
            x = torch.cat(
                [F.pad(latents[:, :, :r], (0, 0, 0, 0, 0, 0, 0, video.shape[1] - latents.shape[1])), video], 2
            )
            control = with_reference_context(
                inputs.vace_context, inputs.vace_reference, video.shape[2], self.out_channels
            )
            return self._call(x, timestep, inputs.replace(vace_context=control, vace_reference=None), x.shape[2])
        x = inputs.with_channels(latents)  # (B, in_channels, F, H, W)
        frames = x.shape[2]
        reference = inputs.reference_latents
        if reference is not None:
            x = torch.cat([reference.to(x.dtype), x], dim=2)  # (B, in_channels, R + F, H, W)
        return self._call(x, timestep, inputs, frames)

    def _call(self, x: torch.Tensor, timestep: torch.Tensor, inputs: BackboneInputs, frames: int) -> torch.Tensor:
        """The transformer on the whole stream ``x`` ``(B, in_channels, R + F, H, W)``; its last ``frames`` frames."""
        control, scale = self._control(inputs, x, frames)
        out = self.transformer(
            x,
            timestep,
            inputs.context,
            control_hidden_states=control,
            control_hidden_states_scale=scale,
            return_dict=False,
        )[0]  # (B, out_channels, R + F, H, W)
        return out[:, :, out.shape[2] - frames :]

    def _control(self, inputs: BackboneInputs, x: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The control input over every frame of ``x`` and one scale per VACE layer."""
        layers = len(self.vace_layers)
        if inputs.vace_context is None:  # the branch runs on zeros and adds nothing
            batch, _, total, height, width = x.shape
            return x.new_zeros(batch, self.vace_in_channels, total, height, width), x.new_zeros(layers)
        control = with_reference_context(inputs.vace_context, inputs.reference_latents, frames, self.out_channels)
        scale = torch.as_tensor(inputs.vace_context_scale, dtype=x.dtype, device=x.device)
        if scale.ndim == 0:
            scale = scale.expand(layers)
        if scale.shape != (layers,):
            raise ValueError(
                f"vace_context_scale must be a scalar or have {layers} entries (one per VACE layer), got shape "
                f"{tuple(scale.shape)}"
            )
        return control.to(x.dtype), scale

    def flops(self, latent_shape: Sequence[int], inputs: BackboneInputs) -> int:
        """Forward FLOPs; the VACE branch always runs (on zeros without a ``vace`` input)."""
        config = self.transformer.config
        shape = {ours: config[theirs] for ours, theirs in _CONFIG_KEYS.items()}
        shape["dim"] = self.dim
        reference = inputs.reference_latents.shape[2] if inputs.reference_latents is not None else 0
        reference += inputs.stream_reference_frames
        latent_shape = (*latent_shape[:2], latent_shape[2] - inputs.stream_reference_frames, *latent_shape[3:])
        return dit_forward_flops(
            shape, latent_shape, inputs.context.shape[1], reference_frames=reference, with_vace=True
        )

    def transformer_blocks(self) -> list[nn.Module]:
        return [*self.transformer.blocks, *self.transformer.vace_blocks]

    def parallelize(self, mesh=None, *, compile: bool = False, **fsdp) -> None:
        """Each (main and VACE) block compiled, then FSDP2 per block and the whole backbone last (torchtitan's
        order; activation checkpointing is diffusers' own, around each block)."""
        shard_blocks(self, self.transformer_blocks(), mesh, compile=compile, **fsdp)


def _check_shape(folder: Path, config, shape: dict) -> None:
    unknown = sorted(set(shape) - set(_CONFIG_KEYS) - {"dim"})
    if unknown:
        raise TypeError(f"DiffusersWanVACE.from_pretrained got unknown arguments {unknown}")
    found = {ours: config[theirs] for ours, theirs in _CONFIG_KEYS.items()}
    found["dim"] = config.num_attention_heads * config.attention_head_dim

    def same(a, b) -> bool:
        return list(a) == list(b) if isinstance(a, (list, tuple)) else a == b

    changed = sorted(k for k, v in shape.items() if not same(v, found[k]))
    if changed:
        raise ValueError(
            f"{folder}: {', '.join(f'{k}={shape[k]}' for k in changed)} differ from the checkpoint's architecture "
            f"({', '.join(f'{k}={found[k]}' for k in changed)})"
        )


@torch.no_grad()
def _widen_patch_embedding(transformer: nn.Module, extra: int) -> None:
    """``extra`` zero-initialised input channels after the pretrained ones."""
    old = transformer.patch_embedding
    new = nn.Conv3d(old.in_channels + extra, old.out_channels, old.kernel_size, old.stride, dtype=old.weight.dtype)
    new.weight.zero_()
    new.weight[:, : old.in_channels] = old.weight
    new.bias.copy_(old.bias)
    transformer.patch_embedding = new
    transformer.register_to_config(in_channels=old.in_channels + extra)
