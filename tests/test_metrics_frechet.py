"""Fréchet distance, streaming statistics, VFID behaviour and the catv2ton preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from scipy import linalg

from itryon.metrics.frechet import frechet_distance, mean_and_covariance
from itryon.metrics.protocols import VFID_PROTOCOLS, vfid_clips, vfid_protocol
from itryon.metrics.vfid import VideoFrechetDistance


def scipy_frechet(x: np.ndarray, y: np.ndarray, ddof: int = 1) -> float:
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False, ddof=ddof), np.cov(y, rowvar=False, ddof=ddof)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _stats(x: torch.Tensor, unbiased: bool):
    x = x.double()
    return mean_and_covariance(torch.tensor(x.shape[0]), x.sum(0), x.T @ x, unbiased)


@pytest.mark.parametrize("unbiased", [True, False])
def test_frechet_matches_scipy_sqrtm(unbiased):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=g) @ torch.randn(16, 16, generator=g)
    y = torch.randn(250, 16, generator=g) * 1.5 + 0.3
    ours = float(frechet_distance(*_stats(x, unbiased), *_stats(y, unbiased)))
    ref = scipy_frechet(x.double().numpy(), y.double().numpy(), ddof=1 if unbiased else 0)
    assert ours == pytest.approx(ref, rel=1e-4)


def test_streaming_statistics_equal_numpy():
    x = torch.randn(50, 6, dtype=torch.float64)
    mu, cov = _stats(x, unbiased=True)
    assert np.allclose(mu.numpy(), x.numpy().mean(0))
    assert np.allclose(cov.numpy(), np.cov(x.numpy(), rowvar=False))
    _, cov_b = _stats(x, unbiased=False)
    assert np.allclose(cov_b.numpy(), np.cov(x.numpy(), rowvar=False, ddof=0))


class PooledColour(torch.nn.Module):
    """A tiny feature network: per-channel mean and std of each clip over time and space, and two mixes."""

    num_features = 8

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        m = clips.mean(dim=(2, 3, 4))
        s = clips.std(dim=(2, 3, 4))
        return torch.cat([m, s, (m * s).sum(1, keepdim=True), m.sum(1, keepdim=True)], dim=1)


def _vfid(**kw) -> VideoFrechetDistance:
    proto = VFID_PROTOCOLS["rgb"].__class__("rgb", bgr=False, size=(16, 16))
    return VideoFrechetDistance(PooledColour(), proto, **kw)


def test_vfid_self_is_zero_and_grows_with_noise():
    g = torch.Generator().manual_seed(0)
    videos = torch.rand(12, 3, 20, 16, 16, generator=g) * 2 - 1
    values = []
    for sigma in (0.0, 0.1, 0.3):
        m = _vfid()
        noisy = (videos + sigma * torch.randn(videos.shape, generator=g)).clamp(-1, 1)
        for i in range(0, 12, 4):
            m.update(noisy[i : i + 4], videos[i : i + 4])
        values.append(float(m.compute()))
    assert abs(values[0]) < 1e-8
    assert values[0] < values[1] < values[2]


def test_vfid_streaming_equals_one_shot_and_scipy():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(10, 3, 20, 16, 16, generator=g) * 2 - 1, torch.rand(10, 3, 20, 16, 16, generator=g) * 1.6 - 0.9
    streamed, whole = _vfid(), _vfid()
    for i in range(0, 10, 3):
        streamed.update(a[i : i + 3], b[i : i + 3])
    whole.update(a, b)
    assert float(streamed.compute()) == pytest.approx(float(whole.compute()), rel=1e-9)
    net, proto = PooledColour(), streamed.protocol
    fa, fb = net(vfid_clips(a, proto)).double().numpy(), net(vfid_clips(b, proto)).double().numpy()
    assert float(whole.compute()) == pytest.approx(scipy_frechet(fa, fb), rel=1e-4)


def test_vfid_warns_on_rank_deficient_covariance():
    m = _vfid()
    m.update(torch.rand(2, 3, 10, 16, 16) * 2 - 1, torch.rand(2, 3, 10, 16, 16) * 2 - 1)
    with pytest.warns(UserWarning, match="2 reference clips for 8-d features"):
        m.compute()


def test_vfid_keeps_fixed_reference_statistics():
    ref, gen = torch.rand(6, 3, 10, 16, 16) * 2 - 1, torch.rand(6, 3, 10, 16, 16) * 2 - 1
    m = _vfid(reset_real_features=False)
    m.update(gen, ref)
    first = float(m.compute())
    m.reset()
    assert int(m.real_n) == 6 and int(m.fake_n) == 0
    m.update(gen, ref)  # the reference set is fixed: its second pass is ignored
    assert int(m.real_n) == 6
    assert float(m.compute()) == pytest.approx(first, rel=1e-9)


def test_catv2ton_preprocessing_matches_reference_pipeline():
    """BGR frames -> ToTensor -> Resize((224, 224)) -> x*2-1 -> non-overlapping 10-frame clips, by hand."""
    g = torch.Generator().manual_seed(0)
    frames_rgb = torch.randint(0, 256, (23, 30, 40, 3), dtype=torch.uint8, generator=g)  # (T, H, W, C) as decoded
    video = frames_rgb.permute(3, 0, 1, 2).float().div(127.5).sub(1).unsqueeze(0)  # (1, 3, T, H, W)
    clips = vfid_clips(video, vfid_protocol("catv2ton"))
    assert clips.shape == (2, 3, 10, 224, 224)  # 23 frames -> 2 clips, 3 frames dropped
    to_tensor, resize = T.ToTensor(), T.Resize((224, 224), antialias=True)
    for clip in range(2):
        for k in (0, 4, 9):
            bgr = frames_rgb[clip * 10 + k].numpy()[..., ::-1].copy()  # OpenCV channel order
            expected = resize(to_tensor(bgr)) * 2 - 1  # (3, 224, 224)
            assert torch.allclose(clips[clip, :, k], expected, atol=1e-5)
    rgb = vfid_clips(video, vfid_protocol("rgb"))
    assert torch.allclose(rgb.flip(1), clips, atol=1e-6)


def test_constant_video_hand_computation():
    colour = torch.tensor([10, 128, 250], dtype=torch.float32)  # R, G, B
    video = (colour / 127.5 - 1).view(1, 3, 1, 1, 1).expand(1, 3, 12, 8, 8)
    clip = vfid_clips(video, vfid_protocol("catv2ton"))
    expected = torch.tensor([250, 128, 10]) / 255 * 2 - 1  # B, G, R
    assert clip.shape == (1, 3, 10, 224, 224)
    assert torch.allclose(clip[0, :, 3, 100, 7], expected, atol=1e-6)


def test_unknown_protocol_lists_available():
    with pytest.raises(ValueError, match=r"unknown VFID protocol 'bgr'.*\['catv2ton', 'rgb'\]"):
        vfid_protocol("bgr")


def test_pyav_reversed_rgb_equals_opencv_bgr(tmp_path):
    """The catv2ton frames come from PyAV with channels reversed; where OpenCV exists, compare with it."""
    cv2 = pytest.importorskip("cv2")
    from itryon.data.video_io import read_video, write_video

    frames = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    path = write_video(tmp_path / "clip.mp4", frames, lossless=True)
    cap, decoded = cv2.VideoCapture(str(path)), []
    ok, frame = cap.read()
    while ok:
        decoded.append(frame)
        ok, frame = cap.read()
    ours = read_video(path).numpy()[..., ::-1]
    assert np.abs(np.stack(decoded).astype(int) - ours.astype(int)).max() <= 2
