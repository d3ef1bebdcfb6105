"""Flow-matching schedule, AC loss and the Euler sampler."""

from __future__ import annotations

import math

import pytest
import torch

from itryon.data.temporal import frames_to_latent, latent_frame_count, latent_frame_index
from itryon.diffusion import ActionConstraintLoss, EulerSampler, FlowMatching


def test_latent_frames_follow_wan_causal_grouping() -> None:
    assert latent_frame_count(17, 4) == 5
    assert latent_frame_index(9, 4).tolist() == [0, 1, 1, 1, 1, 2, 2, 2, 2]
    w = torch.zeros(2, 9)
    w[0, 3] = 1.0  # frame 3 lies in latent frame 1
    w[1, 0] = 0.5
    assert frames_to_latent(w, 4).tolist() == [[0.0, 1.0, 0.0], [0.5, 0.0, 0.0]]
    with pytest.raises(ValueError, match="1 \\+ 4k frames, got 8"):
        latent_frame_count(8, 4)


def test_interpolation_and_velocity_are_the_rectified_flow() -> None:
    x0, noise = torch.randn(3, 2, 2, 2, 2), torch.randn(3, 2, 2, 2, 2)
    t = torch.tensor([0.0, 0.5, 1.0])
    xt = FlowMatching.interpolate(x0, noise, t)
    assert torch.allclose(xt[0], x0[0]) and torch.allclose(xt[2], noise[2])
    assert torch.allclose(xt[1], 0.5 * (x0[1] + noise[1]))
    # moving along the velocity from x_t by t reaches x0
    v = FlowMatching.velocity(x0, noise)
    assert torch.allclose(xt[1] - 0.5 * v[1], x0[1], atol=1e-6)


def test_time_sampling_range_and_shift() -> None:
    flow = FlowMatching(shift=3.0, timestep_sampling="uniform")
    t = flow.sample_t(10000, generator=torch.Generator().manual_seed(0))
    assert 0 < t.min() and t.max() < 1
    # shift s maps 0.5 to s / (1 + s)
    assert flow.apply_shift(torch.tensor(0.5)).item() == pytest.approx(0.75)
    assert t.mean() > 0.6  # shifted towards noise
    assert flow.model_timestep(torch.tensor(0.25)).item() == pytest.approx(250.0)


def test_ac_loss_zero_weight_is_exactly_the_plain_loss() -> None:
    pred, target = torch.randn(2, 4, 3, 2, 2), torch.randn(2, 4, 3, 2, 2)
    mask = torch.ones(2, 1, 3, 1, 1)
    out = ActionConstraintLoss(ac_weight=0.0)(pred, target, mask)
    assert torch.equal(out["loss"], torch.nn.functional.mse_loss(pred, target))


def test_ac_loss_matches_hand_computation() -> None:
    pred = torch.zeros(1, 1, 3, 1, 2)
    target = torch.tensor([[[[[1.0, 1.0]], [[2.0, 0.0]], [[0.0, 3.0]]]]])  # (1,1,3,1,2)
    loss = ActionConstraintLoss(ac_weight=0.5)
    interaction = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])  # frame 5 -> latent frame 2
    mask = loss.action_mask(interaction, pred.shape, temporal_compression=4)
    assert mask.flatten().tolist() == [0.0, 0.0, 1.0]
    out = loss(pred, target, mask)
    flow = (1 + 1 + 4 + 0 + 0 + 9) / 6
    ac = (0 + 9) / 6
    assert out["flow"].item() == pytest.approx(flow)
    assert out["ac"].item() == pytest.approx(ac)
    assert out["loss"].item() == pytest.approx(flow + 0.5 * ac)


def test_ac_loss_region_mask_is_pooled_to_the_latent_grid() -> None:
    loss = ActionConstraintLoss(ac_weight=1.0, use_region=True)
    interaction = torch.ones(1, 5)
    region = torch.zeros(1, 1, 5, 4, 4)
    region[0, 0, 2, 0, 0] = 1.0  # frame 2 -> latent frame 1, pixel (0,0) -> latent cell (0,0)
    mask = loss.action_mask(interaction, (1, 8, 2, 2, 2), temporal_compression=4, region=region)
    expected = torch.zeros(1, 1, 2, 2, 2)
    expected[0, 0, 1, 0, 0] = 1.0
    assert torch.equal(mask, expected)
    with pytest.raises(ValueError, match="interaction_mask"):
        loss.action_mask(interaction, (1, 8, 2, 2, 2), 4, region=None)


def test_euler_sampler_integrates_a_known_flow_exactly() -> None:
    # for data x0 fixed, the exact velocity field is v(x_t, t) = (x_t - x0) / t; Euler is exact on it
    x0 = torch.randn(2, 3, 1, 2, 2)

    def denoise(x, t, unconditional):
        s = (t / 1000).view(-1, 1, 1, 1, 1)
        return (x - x0) / s

    out = EulerSampler(num_steps=7, shift=2.0).sample(denoise, torch.randn_like(x0))
    assert torch.allclose(out, x0, atol=1e-4)


def test_cfg_mixes_conditional_and_unconditional_velocities() -> None:
    calls = []

    def denoise(x, t, unconditional):
        calls.append(unconditional)
        return torch.full_like(x, 0.0 if unconditional else 1.0)

    noise = torch.zeros(1, 1, 1, 1, 1)
    out = EulerSampler(num_steps=2, guidance_scale=3.0).sample(denoise, noise)
    # v = 0 + 3 * (1 - 0) = 3 integrated over t from 1 to 0 -> x = -3
    assert out.item() == pytest.approx(-3.0, abs=1e-5)
    assert calls == [False, True, False, True]
    assert not math.isnan(out.item())
