"""SSIM / PSNR / LPIPS per frame, averaged over frames then videos, with interaction windows and masks."""

from __future__ import annotations

import lpips
import numpy as np
import pytest
import torch
import torchvision
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

from itryon.metrics.lpips_net import BACKBONE_FILES, build_lpips
from itryon.metrics.paired import VideoLPIPS, VideoPSNR, VideoSSIM


def _videos(b=2, t=4, h=24, w=28, seed=0, noise=0.2):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, 3, t, h, w, generator=g) * 2 - 1
    preds = (target + noise * torch.randn(target.shape, generator=g)).clamp(-1, 1)
    return preds, target


def test_ssim_matches_skimage():
    preds, target = _videos()
    m = VideoSSIM()
    m.update(preds, target)
    per_video = []
    for b in range(2):
        frames = []
        for t in range(4):
            p = ((preds[b, :, t] + 1) / 2).permute(1, 2, 0).double().numpy()
            g = ((target[b, :, t] + 1) / 2).permute(1, 2, 0).double().numpy()
            frames.append(
                structural_similarity(
                    p,
                    g,
                    data_range=1.0,
                    channel_axis=2,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                    K1=0.01,
                    K2=0.03,
                )
            )
        per_video.append(np.mean(frames))
    assert float(m.compute()) == pytest.approx(float(np.mean(per_video)), abs=1e-4)


def test_ssim_reflect_border_matches_torchmetrics():
    preds, target = _videos()
    m = VideoSSIM(border="reflect")
    m.update(preds, target)
    frames = lambda x: ((x + 1) / 2).permute(0, 2, 1, 3, 4).reshape(-1, 3, 24, 28)  # noqa: E731
    ref = structural_similarity_index_measure(frames(preds), frames(target), data_range=1.0)
    assert float(m.compute()) == pytest.approx(float(ref), abs=1e-5)  # equal frame counts: frame mean == video mean


def test_psnr_hand_computation():
    target = torch.zeros(2, 3, 2, 4, 4)
    preds = target.clone()
    preds[0] += 0.2  # [0,1] error 0.1 -> MSE 0.01 -> 20 dB
    preds[1, :, 0] += 0.02  # frame 0: MSE 1e-4 -> 40 dB; frame 1 identical -> floor at 100 dB
    m = VideoPSNR()
    m.update(preds, target)
    assert float(m.compute()) == pytest.approx((20 + (40 + 100) / 2) / 2, rel=1e-5)


def test_interaction_window_and_mask():
    target = torch.zeros(1, 3, 6, 8, 8)
    preds = target.clone()
    preds[:, :, :3] += 0.2  # 20 dB outside the action
    preds[:, :, 3:5] += 0.02  # 40 dB inside (frames 3, 4)
    preds[:, :, 3:5, :4] += 0.18  # left half inside: error 0.1 -> 20 dB
    interaction = torch.tensor([[0, 0, 0, 1, 1, 0]], dtype=torch.float32)
    mask = torch.zeros(1, 1, 6, 8, 8)
    mask[:, :, :, 4:] = 1  # right half
    whole = VideoPSNR(window="interaction")
    whole.update(preds, target, interaction=interaction)
    mse_inside = (0.01 + 1e-4) / 2
    assert float(whole.compute()) == pytest.approx(10 * np.log10(1 / mse_inside), rel=1e-5)
    masked = VideoPSNR(window="interaction", masked=True)
    masked.update(preds, target, interaction=interaction, interaction_mask=mask)
    assert float(masked.compute()) == pytest.approx(40.0, rel=1e-5)


def test_videos_without_interaction_do_not_count():
    preds, target = _videos(b=2)
    m = VideoSSIM(window="interaction")
    m.update(preds, target, interaction=torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.float32))
    only = VideoSSIM()
    only.update(preds[:1, :, 1:3], target[:1, :, 1:3])
    assert int(m.count) == 1
    assert float(m.compute()) == pytest.approx(float(only.compute()), abs=1e-7)
    empty = VideoSSIM(window="interaction")
    empty.update(preds, target, interaction=torch.zeros(2, 4))
    assert torch.isnan(empty.compute())


def test_masked_ssim_with_full_mask_equals_unmasked():
    preds, target = _videos()
    ones = torch.ones(2, 1, 4, 24, 28)
    a, b = VideoSSIM(window="interaction", masked=True), VideoSSIM(window="interaction")
    a.update(preds, target, interaction=torch.ones(2, 4), interaction_mask=ones)
    b.update(preds, target, interaction=torch.ones(2, 4))
    assert float(a.compute()) == pytest.approx(float(b.compute()), abs=1e-6)


def test_window_needs_its_batch_key():
    preds, target = _videos()
    with pytest.raises(ValueError, match="needs the batch key 'interaction'"):
        VideoSSIM(window="interaction").update(preds, target)
    with pytest.raises(ValueError, match="needs the batch key 'interaction_mask'"):
        VideoPSNR(window="interaction", masked=True).update(preds, target, interaction=torch.ones(2, 4))


@pytest.fixture
def squeeze_weights(tmp_path):
    torch.manual_seed(0)
    backbone = torchvision.models.squeezenet1_1()  # random weights saved in torchvision's file layout
    torch.save(backbone.state_dict(), tmp_path / BACKBONE_FILES["squeeze"])
    return tmp_path, backbone


def test_lpips_matches_lpips_package(squeeze_weights, monkeypatch):
    folder, backbone = squeeze_weights
    # the lpips package builds its trunk from torchvision; hand it the same backbone instead of a download
    monkeypatch.setattr(lpips.pretrained_networks.tv, "squeezenet1_1", lambda *a, **k: backbone)
    reference = lpips.LPIPS(net="squeeze", verbose=False).eval()
    preds, target = _videos(b=2, t=3, h=32, w=32)
    m = VideoLPIPS(net="squeeze", weights_dir=folder)
    m.update(preds, target)
    with torch.no_grad():
        per_video = [reference(preds[b].permute(1, 0, 2, 3), target[b].permute(1, 0, 2, 3)).mean() for b in range(2)]
    assert float(m.compute()) == pytest.approx(float(torch.stack(per_video).mean()), abs=1e-5)


def test_masked_lpips_with_full_mask_is_close_to_unmasked(squeeze_weights):
    folder, _ = squeeze_weights
    preds, target = _videos(b=1, t=2, h=32, w=32)
    a = VideoLPIPS(net="squeeze", weights_dir=folder, window="interaction", masked=True)
    a.update(preds, target, interaction=torch.ones(1, 2), interaction_mask=torch.ones(1, 1, 2, 32, 32))
    b = VideoLPIPS(net="squeeze", weights_dir=folder)
    b.update(preds, target)
    assert float(a.compute()) == pytest.approx(float(b.compute()), rel=0.05)  # spatial maps are upsampled per layer


def test_lpips_backbone_file_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'alexnet-owt-7be5be79\.pth' not found in"):
        build_lpips("alex", tmp_path)
    with pytest.raises(ValueError, match=r"unknown LPIPS backbone 'resnet'.*\['alex', 'squeeze', 'vgg'\]"):
        build_lpips("resnet", tmp_path)
