"""Metric registry, FVD with a TorchScript stand-in for the StyleGAN-V detector, and weight lookup."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg

from itryon.metrics.registry import available_metrics, build_metric, flatten_result, metric_extras, metric_spec
from itryon.metrics.weights import MissingWeightsError


class StandInDetector(torch.nn.Module):
    """Same call signature as StyleGAN-V's i3d_torchscript.pt: (B, 3, T, H, W) in, 400-d out.

    Like the real network it computes on [-1, 1]: ``rescale=True`` maps [0, 255] there, and without it the
    input must already lie in [-1, 1] (uint8 levels passed with ``rescale=False`` are refused).
    """

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(6, 400)

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> torch.Tensor:
        v = x.float()
        if rescale:
            if x.dtype != torch.uint8:
                raise RuntimeError("rescale=True expects uint8 videos in [0, 255]")
            v = v / 127.5 - 1.0
        elif bool(v.min() < -1.0) or bool(v.max() > 1.0):
            raise RuntimeError("without rescale the detector expects videos in [-1, 1]")
        if resize:
            v = F.interpolate(v, size=(v.shape[2], 8, 8), mode="trilinear", align_corners=False)
        out = self.proj(torch.cat([v.mean(dim=(2, 3, 4)), v.std(dim=(2, 3, 4))], dim=1))
        return out if return_features else out.softmax(-1)


@pytest.fixture
def detector_folder(tmp_path):
    torch.manual_seed(0)
    torch.jit.script(StandInDetector()).save(str(tmp_path / "i3d_torchscript.pt"))
    return tmp_path


def test_fvd_stylegan_v_protocol(detector_folder):
    g = torch.Generator().manual_seed(3)
    real = torch.rand(6, 3, 20, 12, 12, generator=g) * 2 - 1
    fake = torch.rand(6, 3, 18, 12, 12, generator=g) * 1.8 - 0.9
    fvd = build_metric("fvd", weights_dir=detector_folder)
    fvd.update(fake[:3], real[:3])
    fvd.update(fake[3:], real[3:])
    value = float(fvd.compute())
    detector = torch.jit.load(str(detector_folder / "i3d_torchscript.pt"))
    gen = torch.Generator().manual_seed(0)  # the protocol's seed; offsets drawn in update order
    offsets = torch.cat([torch.randint(0, 5, (3,), generator=gen), torch.randint(0, 5, (3,), generator=gen)])
    to_u8 = lambda x: x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    real_clips = torch.stack([to_u8(real[i, :, o : o + 16]) for i, o in enumerate(offsets.tolist())])
    fake_clips = to_u8(fake[:, :, :16])
    with torch.no_grad():
        fr = detector(real_clips, rescale=True, resize=True, return_features=True).double().numpy()
        ff = detector(fake_clips, rescale=True, resize=True, return_features=True).double().numpy()
    s1, s2 = np.cov(ff, rowvar=False, ddof=0), np.cov(fr, rowvar=False, ddof=0)  # biased covariance
    ref = (
        ((ff.mean(0) - fr.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
    )
    assert value == pytest.approx(ref, rel=1e-4, abs=1e-6)
    assert fvd.describe()["clip_length"] == 16
    fvd.reset()  # the offsets restart from the seed
    fvd.update(fake, real)
    assert float(fvd.compute()) == pytest.approx(value, rel=1e-6)


def test_fvd_needs_16_frames(detector_folder):
    fvd = build_metric("fvd", weights_dir=detector_folder)
    with pytest.raises(ValueError, match="at least 16 frames, got 10"):
        fvd.update(torch.zeros(1, 3, 10, 8, 8), None)


def test_unknown_metric_lists_available():
    with pytest.raises(KeyError, match=r"unknown metric 'fid'; available: fvd, isr, .*vfid_resnext"):
        metric_spec("fid")
    assert {
        "vfid_i3d",
        "vfid_resnext",
        "fvd",
        "ssim",
        "lpips",
        "psnr",
        "isr",
        "ssim_interaction",
        "lpips_interaction_masked",
    } <= set(available_metrics())


def test_unknown_option_lists_accepted():
    with pytest.raises(
        TypeError, match=r"metric 'ssim' got unknown option\(s\) \['sigma'\]; accepted: \['protocol', 'border'\]"
    ):
        build_metric("ssim", sigma=2.0)


def test_specs_declare_direction_and_needs():
    assert metric_spec("ssim").higher_is_better and not metric_spec("lpips").higher_is_better
    assert not metric_spec("vfid_i3d").higher_is_better and metric_spec("fvd").needs_reference
    assert metric_spec("isr").higher_is_better and not metric_spec("isr_vlm").needs_reference


def test_weight_metrics_fail_without_files(tmp_path):
    for name, filename in [
        ("vfid_i3d", "i3d.pt"),
        ("vfid_resnext", "resnext-101.pth"),
        ("fvd", "i3d_torchscript.pt"),
        ("lpips", "alexnet-owt-7be5be79.pth"),
    ]:
        with pytest.raises(MissingWeightsError, match=f"'{filename}' not found in '{tmp_path}'"):
            build_metric(name, weights_dir=tmp_path)
    assert build_metric("ssim", weights_dir=tmp_path) is not None  # no weights needed


def test_metric_extras_and_flatten():
    spec = metric_spec("isr_counterfactual")
    batch = {"video": 0, "actions": [[]], "counterfactual": 1}
    assert metric_extras(spec, batch) == {"actions": [[]], "counterfactual": 1}
    assert metric_extras(spec, {"video": 0, "actions": [[]]}) == {"actions": [[]]}
    with pytest.raises(KeyError, match=r"metric 'ssim_interaction' needs batch key\(s\) \['interaction'\]"):
        metric_extras(metric_spec("ssim_interaction"), {"video": 0})
    flat = flatten_result("isr", {"value": torch.tensor(0.5), "false_interaction_rate": torch.tensor(0.25)})
    assert flat == {"isr": 0.5, "isr_false_interaction_rate": 0.25}
    assert flatten_result("ssim", torch.tensor(0.75)) == {"ssim": 0.75}
