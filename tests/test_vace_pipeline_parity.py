"""Sampling in the ``wan`` VACE mode equals diffusers' ``WanVACEPipeline`` on the same tiny random models.

Both sides get the same video, soft mask (binarised by both before it masks the video), garment image of another
aspect ratio (fitted on a white canvas by both), prompt embeddings, flow-matching Euler scheduler and seed: the
pipeline's noise covers the reference frame's position of the main stream, and so must ours.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from itryon.conditioning import ConditioningStack, GarmentAdapter, GlobalCaptionAdapter, PersonAdapter
from itryon.diffusion import EulerSampler
from itryon.models import DiffusersWanVACE, T5TextEncoder, WanDiT, WanVAE
from itryon.models.loading import to_native_names
from itryon.training import TryOnModule

FRAMES, HEIGHT, WIDTH = 5, 32, 48  # 2 latent frames of 4 x 6 (16 = VAE 8 x patch 2 divides both sides)
GARMENT = (24, 40)  # another aspect ratio than the video's: fitted inside a white canvas
STEPS, SHIFT, SEED = 3, 3.0, 7
TOL = 1e-5


@pytest.fixture(scope="module")
def transformer_folder(tmp_path_factory):
    from diffusers import WanVACETransformer3DModel

    model = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=16, freq_dim=32, ffn_dim=40, num_layers=2, rope_max_seq_len=64, vace_layers=[0, 1],
        vace_in_channels=16 + 16 + 64,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in model.parameters():  # every weight random, the zero-initialised VACE projections included
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    folder = tmp_path_factory.mktemp("vace") / "transformer"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pixels():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)
    mask = rng.choice(np.array([0, 60, 140, 255], dtype=np.uint8), (FRAMES, HEIGHT, WIDTH))  # soft: 60 and 140
    garment = rng.integers(0, 256, (*GARMENT, 3), dtype=np.uint8)
    return video, mask, garment


def to_signed(u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(u8.astype(np.float32) / 255.0) * 2.0 - 1.0  # diffusers' image normalisation


def diffusers_sample(transformer_folder, wan_vae_folder, pixels, prompt_embeds) -> tuple[torch.Tensor, torch.Tensor]:
    """The pipeline's video ``(1, 3, T, H, W)`` in [0, 1] and its final latents ``(1, C, R + F, h, w)``."""
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanVACEPipeline,
        WanVACETransformer3DModel,
    )

    video, mask, garment = pixels
    pipe = WanVACEPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=AutoencoderKLWan.from_pretrained(wan_vae_folder),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=SHIFT),
        transformer=WanVACETransformer3DModel.from_pretrained(transformer_folder),
    )
    pipe.set_progress_bar_config(disable=True)
    outputs = []
    for output_type in ("pt", "latent"):
        outputs.append(
            pipe(
                video=[Image.fromarray(frame) for frame in video],
                mask=[Image.fromarray(frame, mode="L") for frame in mask],
                reference_images=Image.fromarray(garment),
                prompt_embeds=prompt_embeds,
                guidance_scale=1.0,
                num_inference_steps=STEPS,
                height=HEIGHT,
                width=WIDTH,
                num_frames=FRAMES,
                generator=torch.Generator().manual_seed(SEED),
                output_type=output_type,
            ).frames
        )
    return outputs[0].permute(0, 2, 1, 3, 4), outputs[1]


def itryon_sample(backbone, wan_vae_folder, t5_folder, pixels, **departure) -> tuple[torch.Tensor, torch.Tensor]:
    """``TryOnModule.generate`` in the ``wan`` mode (``departure`` changes one choice): the video in [0, 1] and
    the video latents it decoded."""
    video, mask, garment = pixels
    person = {"mask_threshold": 0.5, **{k: v for k, v in departure.items() if k == "mask_threshold"}}
    garment_args = {"mode": "wan", **{k: v for k, v in departure.items() if k in ("mode", "fit")}}
    conditioning = ConditioningStack(
        {
            "person": PersonAdapter(mode="vace", latent_channels=16, spatial_compression=8, **person),
            "garment": GarmentAdapter(latent_channels=16, **garment_args),
            "caption": GlobalCaptionAdapter(T5TextEncoder(t5_folder, max_length=8), drop_prob=0.0),
        }
    )
    module = TryOnModule(
        backbone, conditioning, WanVAE(wan_vae_folder), sampler=EulerSampler(STEPS, shift=SHIFT), prediction="velocity"
    )
    decoded = []
    decode = module.vae.decode
    module.vae.decode = lambda latents: decoded.append(latents) or decode(latents)  # records what generate decodes
    batch = {
        "agnostic": to_signed(video).permute(3, 0, 1, 2)[None],  # (1, 3, T, H, W)
        "agnostic_mask": torch.from_numpy(mask.astype(np.float32) / 255.0)[None, None],  # (1, 1, T, H, W)
        "garment": to_signed(garment).permute(2, 0, 1)[None],  # (1, 3, Hg, Wg)
        "caption": ["a person lifts the hem"],
    }
    video_out = module.generate(batch, seed=SEED) * 0.5 + 0.5
    return video_out, decoded[0]


def wan_dit_from(transformer_folder) -> WanDiT:
    reference = DiffusersWanVACE.from_pretrained(transformer_folder).transformer
    backbone = WanDiT(
        in_channels=16, out_channels=16, dim=24, ffn_dim=40, num_layers=2, num_heads=2, text_dim=16, freq_dim=32,
        rope_max_seq_len=64, vace_layers=[0, 1], vace_in_channels=96,
    )  # fmt: skip
    backbone.load_state_dict(to_native_names(reference.state_dict(), "diffusers"), strict=True)
    return backbone


@pytest.fixture(scope="module")
def expected(transformer_folder, wan_vae_folder, t5_folder, pixels):
    prompt_embeds = T5TextEncoder(t5_folder, max_length=8)(["a person lifts the hem"])[0]
    with torch.no_grad():
        return diffusers_sample(transformer_folder, wan_vae_folder, pixels, prompt_embeds)


@pytest.mark.parametrize("family", ["diffusers", "wan_dit"])
def test_wan_mode_sampling_equals_the_diffusers_vace_pipeline(
    family, expected, transformer_folder, wan_vae_folder, t5_folder, pixels
):
    backbone = (
        DiffusersWanVACE.from_pretrained(transformer_folder)
        if family == "diffusers"
        else wan_dit_from(transformer_folder)
    )
    video, latents = expected
    with torch.no_grad():
        actual_video, actual_latents = itryon_sample(backbone.eval(), wan_vae_folder, t5_folder, pixels)
    assert latents.shape == (1, 16, 1 + 2, HEIGHT // 8, WIDTH // 8)  # the reference frame's position, then the video
    assert actual_latents.shape == (1, 16, 2, HEIGHT // 8, WIDTH // 8) and latents.std() > 0.5
    torch.testing.assert_close(actual_latents, latents[:, :, 1:], atol=TOL, rtol=TOL)
    assert actual_video.shape == video.shape == (1, 3, FRAMES, HEIGHT, WIDTH)
    torch.testing.assert_close(actual_video, video, atol=TOL, rtol=TOL)


@pytest.mark.parametrize(
    "departure",
    [dict(mode="reference"), dict(fit="stretch"), dict(mask_threshold=None)],
    ids=["clean_reference_in_the_stream", "stretched_garment", "soft_mask"],
)
def test_each_departure_from_wan_breaks_the_parity(
    departure, expected, transformer_folder, wan_vae_folder, t5_folder, pixels
):
    """itryon's own choices (clean reference latent in the main stream, stretched garment, soft mask) each move the
    sample: the parity above is evidence of all three."""
    backbone = DiffusersWanVACE.from_pretrained(transformer_folder).eval()
    with torch.no_grad():
        _, latents = itryon_sample(backbone, wan_vae_folder, t5_folder, pixels, **departure)
    assert (latents - expected[1][:, :, 1:]).abs().max() > 30 * TOL
