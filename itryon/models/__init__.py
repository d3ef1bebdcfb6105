"""Backbone models: the backbone seam, the Wan2.1 video DiT (and diffusers' as a backbone), its attention and RoPE,
VAE and text-encoder wrappers."""

from itryon.models.action_rope import ActionRoPE
from itryon.models.attention import ATTENTION_BACKENDS, WanAttention, attention
from itryon.models.backbone import KINDS, Backbone, BackboneInputs
from itryon.models.diffusers_wan import DiffusersWanVACE
from itryon.models.dit import WanDiT
from itryon.models.flops import dit_forward_flops
from itryon.models.gated_attention import GatedWanAttention
from itryon.models.rope import RotaryEmbedding3D, apply_rotary
from itryon.models.text import ByteTextEncoder, T5TextEncoder
from itryon.models.vae import LinearVAE, PixelVAE, WanVAE

__all__ = [
    "ActionRoPE",
    "ATTENTION_BACKENDS",
    "KINDS",
    "Backbone",
    "BackboneInputs",
    "ByteTextEncoder",
    "DiffusersWanVACE",
    "GatedWanAttention",
    "LinearVAE",
    "PixelVAE",
    "RotaryEmbedding3D",
    "T5TextEncoder",
    "WanAttention",
    "WanDiT",
    "WanVAE",
    "apply_rotary",
    "attention",
    "dit_forward_flops",
]
