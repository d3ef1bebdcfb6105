"""The training objective: the weight every loss choice gives a clean-sample error at each noise level, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from itryon.config import CONFIG_ROOT, instantiate
from itryon.data.contract import collate
from itryon.data.synthetic import SyntheticTryOnDataset
from itryon.diffusion import ActionConstraintLoss, DecodedLoss, FlowMatching
from itryon.diffusion.losses import (
    _ssim_inside,
    effective_x0_weight,
    high_noise_weight_ratio,
    output_error_weight,
    ssim_valid,
)
from itryon.metrics.paired import VideoSSIM
from itryon.training.run import prepare_config

TIMES = (0.1, 0.3, 0.5, 0.9)


def hand_weight(space: str, weighting: str, t: float) -> float:
    """The weight of ||x0_hat - x0||^2 at time t, written out from the definitions."""
    w = {"none": 1.0, "sigma_sqrt": t**-2.0, "cosmap": 2.0 / (math.pi * (1.0 - 2.0 * t + 2.0 * t * t))}[weighting]
    return w / (t * t) if space == "velocity" else w


@pytest.mark.parametrize("space", ["velocity", "x0"])
@pytest.mark.parametrize("weighting", ["none", "sigma_sqrt", "cosmap"])
def test_effective_weight_matches_the_hand_formula(space: str, weighting: str) -> None:
    t = torch.tensor(TIMES, dtype=torch.float64)
    got = effective_x0_weight(space, weighting, t)
    torch.testing.assert_close(got, torch.tensor([hand_weight(space, weighting, x) for x in TIMES], dtype=got.dtype))


@pytest.fixture(scope="module")
def module_and_batch():
    cfg = prepare_config(CONFIG_ROOT / "default.yaml", ["model.sampler.num_steps=1"])
    module = instantiate(cfg.model, "model").eval()  # eval: no CFG dropout
    ds = SyntheticTryOnDataset(split="train", num_clips=4, seed=0)
    return module, collate([ds[i] for i in range(len(TIMES))])


@pytest.mark.parametrize("prediction", ["velocity", "sample"])
@pytest.mark.parametrize("space", ["velocity", "x0"])
@pytest.mark.parametrize("weighting", ["none", "sigma_sqrt", "cosmap"])
def test_module_loss_weights_clean_sample_errors_as_documented(module_and_batch, prediction, space, weighting) -> None:
    """A backbone whose clean-sample estimate is off by a known error ``e`` per sample gets the loss
    ``mean_b(hand_weight(t_b) * e_b^2)``, whatever it predicts."""
    module, batch = module_and_batch
    module.prediction, module.residual = prediction, False
    module.loss_fn = ActionConstraintLoss(ac_weight=0.0, space=space, weighting=weighting)
    t = torch.tensor(TIMES)
    errors = torch.tensor([0.5, -1.0, 2.0, 0.25])  # constant x0 error per sample
    gen = torch.Generator().manual_seed(0)
    x0 = module.vae.encode(batch["video"])
    noise = torch.randn(x0.shape, generator=gen)
    x_t = module.flow.interpolate(x0, noise, t)
    x0_hat = x0 + errors.view(-1, 1, 1, 1, 1)
    backbone_out = x0_hat if prediction == "sample" else (x_t - x0_hat) / t.view(-1, 1, 1, 1, 1)
    real_forward, real_sample_t = module.backbone.forward, module.flow.sample_t
    module.backbone.forward = lambda *args, **kwargs: backbone_out
    module.flow.sample_t = lambda *args, **kwargs: t
    try:
        loss = module.diffusion_loss(batch, generator=torch.Generator().manual_seed(0))["loss"]
    finally:
        module.backbone.forward, module.flow.sample_t = real_forward, real_sample_t
    expected = sum(hand_weight(space, weighting, float(tb)) * float(e) ** 2 for tb, e in zip(t, errors)) / len(TIMES)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_residual_prediction_starts_at_copy_the_input(module_and_batch) -> None:
    """With a zero backbone output, residual sample prediction returns the latents of the person's kept region,
    which decode to what the VAE makes of the agnostic video outside the garment region."""
    module, batch = module_and_batch
    module.prediction, module.residual = "sample", True
    shape = module.latent_shape(batch["video"])
    cond = module.conditioning(batch, vae=module.vae, latent_shape=shape)
    real_forward = module.backbone.forward
    module.backbone.forward = lambda x, *args, **kwargs: torch.zeros(shape)
    try:
        _, x0_hat = module.predict(torch.randn(shape), torch.full((shape[0],), 1.0), cond)
    finally:
        module.backbone.forward = real_forward
    keep = 1 - batch["agnostic_mask"]
    expected = module.vae.encode(batch["agnostic"] * keep)
    torch.testing.assert_close(x0_hat, expected, atol=1e-5, rtol=0)
    error = (module.vae.decode(x0_hat) - batch["agnostic"] * keep).abs().mean()
    assert error < 0.05  # the linear latent space keeps the kept region closely (0 error with a PixelVAE)
    with pytest.raises(ValueError, match="residual=True .* needs prediction='sample'"):
        type(module)(module.backbone, module.conditioning, module.vae, prediction="velocity", residual=True)


@pytest.mark.parametrize("prediction", ["velocity", "sample"])
def test_output_error_weight_converts_by_the_parametrisation(prediction: str) -> None:
    t = torch.tensor(TIMES, dtype=torch.float64)
    got = output_error_weight(prediction, "velocity", "none", t)
    expected = [1.0 if prediction == "velocity" else x**-2 for x in TIMES]  # velocity MSE of each output
    torch.testing.assert_close(got, torch.tensor(expected, dtype=got.dtype))


def test_velocity_loss_on_sample_prediction_starves_the_high_noise_end() -> None:
    """The accident the named choices prevent: velocity MSE on a clean-sample predictor gives the times near
    t = 1 a tenth of the mean weight; x0 MSE (or a velocity predictor) weighs them like any other time."""
    logit_normal, uniform = FlowMatching(timestep_sampling="logit_normal"), FlowMatching(timestep_sampling="uniform")
    velocity, x0 = ActionConstraintLoss(space="velocity"), ActionConstraintLoss(space="x0")
    assert high_noise_weight_ratio(logit_normal, velocity, "sample") < 0.2
    assert high_noise_weight_ratio(logit_normal, x0, "sample") == pytest.approx(1.0, abs=1e-6)
    assert high_noise_weight_ratio(logit_normal, velocity, "velocity") == pytest.approx(1.0, abs=1e-6)
    assert high_noise_weight_ratio(uniform, x0, "velocity") > 2.0  # t^2: the high-noise end weighs most


def test_module_warns_when_the_high_noise_end_is_starved() -> None:
    cfg = prepare_config(
        CONFIG_ROOT / "default.yaml",
        [
            "model.loss.space=velocity",
            "model.residual=false",
            "model.flow.timestep_sampling=logit_normal",
            "model.flow.shift=1.0",
        ],
    )
    with pytest.warns(UserWarning, match="high-noise end"):
        instantiate(cfg.model, "model")


def test_default_objective_trains_the_high_noise_end() -> None:
    cfg = prepare_config(CONFIG_ROOT / "default.yaml")
    module = instantiate(cfg.model, "model")
    assert high_noise_weight_ratio(module.flow, module.loss_fn, module.prediction) >= 1.0


def test_ssim_valid_is_the_evaluation_ssim_and_differentiable() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(6, 3, 24, 32, generator=gen)
    pred = (target + 0.2 * torch.randn(target.shape, generator=gen)).clamp(0, 1).requires_grad_(True)
    got = ssim_valid(pred, target)
    expected = VideoSSIM(border="valid").frame_scores(pred.detach() * 2 - 1, target * 2 - 1, None)
    torch.testing.assert_close(got.detach(), expected, atol=1e-6, rtol=0)
    assert ssim_valid(target, target).tolist() == pytest.approx([1.0] * 6, abs=1e-6)
    got.sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least 11x11 pixels, got 8x32"):
        ssim_valid(pred[..., :8, :], target[..., :8, :])


@pytest.mark.parametrize(
    "rows, cols",
    [
        ((6, 18), (8, 24)),
        ((0, 3), (29, 32)),
        ((22, 24), (0, 2)),
        ((0, 24), (0, 32)),
        ((12, 13), (15, 16)),
        (None, None),
    ],
)
def test_ssim_of_the_crop_equals_the_whole_frame_ssim(rows, cols) -> None:
    """Windows away from the changed pixels score exactly 1, wherever the changed block sits (corners, borders,
    one pixel, the whole frame, nothing)."""
    gen = torch.Generator().manual_seed(2)
    target = torch.rand(4, 3, 24, 32, generator=gen)
    changed = torch.zeros(24, 32, dtype=torch.bool)
    if rows is not None:
        changed[rows[0] : rows[1], cols[0] : cols[1]] = True
    pred = torch.where(changed, torch.rand(target.shape, generator=gen), target)
    expected = ssim_valid(pred, target).mean()
    assert _ssim_inside(pred, target, changed).item() == pytest.approx(expected.item(), abs=1e-6)


def test_decoded_loss_scores_the_pasted_back_composite() -> None:
    """1 - SSIM of the composite generation returns (prediction inside the mask, the video outside) plus L1: pixels
    outside the mask cost nothing."""
    gen = torch.Generator().manual_seed(1)
    video = torch.rand(2, 3, 5, 24, 32, generator=gen) * 2 - 1
    mask = torch.zeros(2, 1, 5, 24, 32)
    mask[..., 6:18, 8:24] = 1.0
    pred = video + 0.5 * torch.randn(video.shape, generator=gen)
    loss = DecodedLoss(ssim_weight=1.0, l1_weight=2.0)
    composite = pred * mask + video * (1 - mask)
    frames = lambda v: v.transpose(1, 2).flatten(0, 1).add(1).div(2)  # noqa: E731
    expected = 1 - ssim_valid(frames(composite), frames(video)).mean() + 2.0 * (composite - video).abs().mean()
    assert loss(pred, video, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    outside_changed = pred + 3.0 * (1 - mask)
    assert loss(outside_changed, video, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss(video, video, mask).item() == pytest.approx(0.0, abs=1e-6)
    whole = DecodedLoss(ssim_weight=0.0, l1_weight=1.0, paste_back=False)
    assert whole(pred, video).item() == pytest.approx((pred - video).abs().mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="needs the generation mask"):
        loss(pred, video)
    with pytest.raises(ValueError, match="needs ssim_weight > 0 or l1_weight > 0"):
        DecodedLoss(ssim_weight=0.0, l1_weight=0.0)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        DecodedLoss(ssim_weight=-1.0)


def test_module_adds_the_decoded_term_to_the_latent_loss(module_and_batch) -> None:
    module, batch = module_and_batch
    module.prediction, module.residual = "sample", True
    module.loss_fn = ActionConstraintLoss(ac_weight=0.5, space="x0")
    try:
        plain = module.diffusion_loss(batch, generator=torch.Generator().manual_seed(0))
        module.decoded_loss = DecodedLoss(ssim_weight=1.0)
        out = module.diffusion_loss(batch, generator=torch.Generator().manual_seed(0))
        assert out["flow"].item() == pytest.approx(plain["flow"].item(), rel=1e-6)
        assert 0.0 < out["decoded"].item() < 1.0
        assert out["loss"].item() == pytest.approx((plain["loss"] + out["decoded"]).item(), rel=1e-6)
        real_decode = module.vae.decode
        module.vae.decode = torch.no_grad()(real_decode)  # a VAE that decodes without gradients (WanVAE)
        with pytest.raises(ValueError, match="decoded_loss needs a VAE whose decode passes gradients"):
            module.diffusion_loss(batch, generator=torch.Generator().manual_seed(0))
    finally:
        module.decoded_loss = None
        module.vae.__dict__.pop("decode", None)
