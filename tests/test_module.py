"""The LightningModule on the default tiny config: optimisation lowers the loss, sampling, wiring errors."""

from __future__ import annotations

import pytest
import torch

from itryon.conditioning import Conditions
from itryon.config import CONFIG_ROOT, instantiate
from itryon.data.contract import collate
from itryon.data.synthetic import SyntheticTryOnDataset
from itryon.models import BackboneInputs
from itryon.training.run import prepare_config


@pytest.fixture(scope="module")
def cfg():
    return prepare_config(CONFIG_ROOT / "default.yaml", ["model.sampler.num_steps=2"])


@pytest.fixture(scope="module")
def batch():
    ds = SyntheticTryOnDataset(split="train", num_clips=4, seed=0)
    return collate([ds[i] for i in range(2)])


def fixed_loss(module, batch) -> float:
    module.eval()  # no CFG dropout; the same noise and times every call
    with torch.no_grad():
        return module.diffusion_loss(batch, generator=torch.Generator().manual_seed(0))["loss"].item()


def test_optimisation_steps_lower_the_loss_on_a_fixed_batch(cfg, batch) -> None:
    torch.manual_seed(0)
    module = instantiate(cfg.model, "model")
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    before = fixed_loss(module, batch)
    losses = []
    for _ in range(8):
        module.eval()
        loss = module.diffusion_loss(batch, generator=torch.Generator().manual_seed(0))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(fixed_loss(module, batch))
    assert losses[0] < before
    assert losses[-1] < 0.95 * before


def test_generate_returns_a_video_in_range(cfg, batch) -> None:
    module = instantiate(cfg.model, "model")
    video = module.generate(batch, num_steps=2, seed=3)
    assert video.shape == batch["video"].shape
    assert video.min() >= -1 and video.max() <= 1
    again = module.generate(batch, num_steps=2, seed=3)
    assert torch.equal(video, again)  # seeded sampling is reproducible
    assert module.training  # generate restores the training flag


def test_backbone_channels_are_derived_and_mismatches_name_the_key_and_the_value(cfg) -> None:
    module = instantiate(cfg.model, "model")
    assert (module.backbone.in_channels, module.backbone.vace_in_channels) == (16, 16 + 16 + 16)
    node = cfg.model.copy()
    node.backbone.in_channels = 16
    with pytest.raises(
        Exception, match=r"model.backbone sets in_channels=16, which follow from the VAE and the conditioning"
    ):
        instantiate(node, "model")
    built = instantiate(cfg.model.backbone, "model.backbone")(in_channels=17, vace_in_channels=48)
    with pytest.raises(
        Exception, match=r"model.backbone.in_channels is 17, but the VAE and the conditioning make it 16"
    ):
        type(module)(built, module.conditioning, module.vae)


def test_guidance_uses_the_configured_unconditional_pass(cfg, batch) -> None:
    torch.manual_seed(0)
    module = instantiate(cfg.model, "model")
    for p in module.backbone.parameters():  # a fresh backbone outputs zeros; give it a response to conditions
        torch.nn.init.normal_(p, std=0.02)
    plain = module.generate(batch, num_steps=2, guidance_scale=1.0)
    guided = module.generate(batch, num_steps=2, guidance_scale=4.0)
    assert not torch.allclose(plain, guided)
    module.guidance_drop = ["garment", "caption", "actions"]
    partial = module.generate(batch, num_steps=2, guidance_scale=4.0)
    assert not torch.allclose(partial, guided)  # keeping the person changes the unconditional pass
    module.guidance_drop = ["no_such_adapter"]
    with pytest.raises(Exception, match="no_such_adapter"):
        module.generate(batch, num_steps=2, guidance_scale=4.0)


def test_sample_prediction_is_converted_to_a_velocity(cfg) -> None:
    module = instantiate(cfg.model, "model")
    assert module.prediction == "sample"
    module.residual = False
    x0 = torch.randn(2, 192, 5, 12, 16)
    noise = torch.randn_like(x0)
    t = torch.tensor([0.3, 0.8])
    x_t = module.flow.interpolate(x0, noise, t)
    module.backbone.forward = lambda *args, **kwargs: x0  # a perfect clean-sample prediction

    no_conditions = Conditions(BackboneInputs(torch.zeros(2, 1, 64)))
    v = module.predict_velocity(x_t, t * 1000, no_conditions)
    torch.testing.assert_close(v, noise - x0, atol=1e-5, rtol=1e-5)  # exactly the flow's velocity
    # near t = 0 the division is clamped at min_sample_t
    v0 = module.predict_velocity(x_t, torch.tensor([0.0, 0.0]), no_conditions)
    torch.testing.assert_close(v0, (x_t - x0) / module.min_sample_t)
    with pytest.raises(ValueError, match="prediction must be 'velocity' or 'sample'"):
        type(module)(module.backbone, module.conditioning, module.vae, prediction="eps")


def test_backbone_flops_of_a_batch_are_counted(cfg, batch) -> None:
    from itryon.models import dit_forward_flops

    module = instantiate(cfg.model, "model")
    module.training_step(batch, 0)
    cond = module.conditioning(batch, vae=module.vae, latent_shape=(2, 16, 5, 12, 16))
    forward = dit_forward_flops(module.backbone, (2, 16, 5, 12, 16), cond.inputs.context.shape[1], reference_frames=1)
    assert module.flops_per_batch == 3 * forward > 0  # forward and backward
    module.validation_step(batch, 0)  # the loss and a sampled video: num_steps more forward passes
    assert module.flops_per_batch == (1 + module.sampler.num_steps) * forward


def test_a_restated_derived_value_is_a_config_error_naming_where_it_was_set() -> None:
    from itryon.config import ConfigError

    with pytest.raises(
        ConfigError, match=r"'model.backbone.vace_in_channels' \(set in command line\) follows from the VAE"
    ):
        prepare_config(CONFIG_ROOT / "default.yaml", ["model.backbone.vace_in_channels=400"])
