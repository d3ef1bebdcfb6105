"""Per-component precision from a config: a bf16 text encoder and VAE instantiate, encode, and bad names are named."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from itryon.config import ConfigError, instantiate, validate
from itryon.models.precision import as_dtype


def test_bf16_t5_and_vae_config_instantiates_and_encodes(wan_vae_folder, t5_folder):
    cfg = OmegaConf.create(
        {
            "vae": {"_target_": "itryon.models.WanVAE", "path": str(wan_vae_folder), "dtype": "bfloat16"},
            "text": {
                "_target_": "itryon.models.T5TextEncoder",
                "path": str(t5_folder),
                "max_length": 8,
                "dtype": "bf16",
            },
        }
    )
    validate(cfg)
    built = instantiate(cfg)
    vae, text = built["vae"], built["text"]
    assert {p.dtype for p in vae.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in text.parameters()} == {torch.bfloat16}
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    latents = vae.encode(video)
    assert latents.shape == (1, 16, 2, 2, 2) and latents.dtype == torch.float32  # the caller's dtype
    reference = instantiate(OmegaConf.merge(cfg.vae, {"dtype": "float32"})).encode(video)
    assert (latents - reference).abs().max() < 0.05 * reference.abs().max()  # bf16 rounding, not another encoder
    embeddings, mask = text(["a person lifts the hem"])
    assert embeddings.dtype == torch.bfloat16 and embeddings.shape == (1, 8, 16)
    assert torch.all(embeddings[~mask] == 0) and embeddings[mask].abs().sum() > 0


def test_a_wrong_precision_name_is_an_error_naming_the_key(wan_vae_folder):
    cfg = OmegaConf.create({"vae": {"_target_": "itryon.models.WanVAE", "path": str(wan_vae_folder), "dtype": "bf17"}})
    with pytest.raises(
        ConfigError, match=r"'vae.dtype' expects Literal\['float32', 'fp32', 'bfloat16'.*got str 'bf17'"
    ):
        validate(cfg)
    with pytest.raises(ValueError, match=r"WanVAE dtype must be one of \['bf16', 'bfloat16'"):
        as_dtype("bf17", "WanVAE dtype")
    assert as_dtype("torch.bfloat16") is torch.bfloat16 and as_dtype(torch.float16) is torch.float16
