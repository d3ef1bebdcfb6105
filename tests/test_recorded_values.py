"""The objective and the sampler equal values recorded from an earlier version of the code.

On fixed weights (every parameter drawn from one seed, in name order), a fixed batch and fixed seeds, the
validation loss, a training loss (with CFG dropout) and a sampled video must not move when the model, the
conditioning or the module are reorganised. Three configurations cover the routes into the backbone: the default
(VACE context, reference frame, token residual, A-RoPE context), a backbone without a VACE branch (channels,
appended tokens, token residual) and the default with the zero-initialised gates (gated self- and
cross-attention branches).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from itryon.config import CONFIG_ROOT, instantiate
from itryon.training.run import prepare_config

# (validation loss, its flow term, its AC term, training loss, sum and mean |.| of a 2-step sample)
RECORDED = {
    "default": (0.3183870017528534, 0.2549595534801483, 0.12685491144657135, 0.3177744150161743, 44926.01305311719, 0.3850750091197193),
    "no_vace": (0.31271347403526306, 0.250350683927536, 0.12472556531429291, 0.3154234290122986, 45500.654099119914, 0.3893170802751111),
    "gated": (0.306315541267395, 0.2451377809047699, 0.12235551327466965, 0.3080522418022156, 44794.80692252821, 0.38017762320879284),
}  # fmt: skip
VARIANTS = {
    "default": {},
    "no_vace": {
        "defaults": ["/default", {"model@model.backbone": "tiny"}, {"conditioning@model.conditioning": "itryon_no_vace"}],
        "model": {"backbone": {"in_channels": 400}},
    },
    "gated": {"defaults": ["/default"], "model": {"backbone": {"zero_init_gates": True}}},
}


def fill(module: torch.nn.Module, seed: int = 0, scale: float = 0.05) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(module.named_parameters()):
            param.copy_(torch.randn(param.shape, generator=generator) * scale)


def config_path(name: str, tmp_path: Path) -> Path:
    if not VARIANTS[name]:
        return CONFIG_ROOT / "default.yaml"
    path = tmp_path / f"{name}.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(VARIANTS[name])))
    return path


@pytest.mark.parametrize("name", list(RECORDED))
def test_losses_and_samples_equal_the_recorded_values(name, tmp_path, synthetic_batch):
    cfg = prepare_config(config_path(name, tmp_path), ["model.sampler.num_steps=2"])
    module = instantiate(cfg.model, "model")
    fill(module)
    with torch.no_grad():
        module.eval()
        val = module.diffusion_loss(synthetic_batch, generator=torch.Generator().manual_seed(0))
        module.train()
        torch.manual_seed(5)  # CFG dropout draws from the global generator
        train = module.diffusion_loss(synthetic_batch, generator=torch.Generator().manual_seed(1))
        video = module.generate(synthetic_batch, num_steps=2, seed=3).double()
    got = (val["loss"].item(), val["flow"].item(), val["ac"].item(), train["loss"].item(), video.sum().item(), video.abs().mean().item())
    assert got == RECORDED[name]
