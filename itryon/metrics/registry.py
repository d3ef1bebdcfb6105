"""Metric names -> ``torchmetrics.Metric`` factories, with what each metric needs and which way is better.

Every metric is updated as ``metric.update(pred, video, **extras)`` where ``pred`` and ``video`` are
``(B, 3, T, H, W)`` in [-1, 1] and ``extras`` are the batch keys the spec lists (``required_keys``
must be present, ``optional_keys`` are passed when present).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torchmetrics import Metric

from itryon.metrics.fvd import FrechetVideoDistance, load_fvd_detector
from itryon.metrics.isr import CounterfactualJudge, InteractionSuccessRate
from itryon.metrics.paired import VideoLPIPS, VideoPSNR, VideoSSIM
from itryon.metrics.vfid import VideoFrechetDistance, i3d_network, resnext_network

WeightsDir = str | os.PathLike | None


@dataclass(frozen=True)
class MetricSpec:
    name: str
    factory: Callable[..., Metric]
    higher_is_better: bool
    needs_reference: bool
    required_keys: tuple[str, ...] = ()
    optional_keys: tuple[str, ...] = ()
    weight_files: tuple[str, ...] = ()
    description: str = ""

    def options(self) -> list[str]:
        """Keyword options the factory accepts besides ``weights_dir``."""
        return [p for p in inspect.signature(self.factory).parameters if p != "weights_dir"]


def _vfid_i3d(
    weights_dir: WeightsDir = None,
    protocol: str = "catv2ton",
    filename: str = "i3d.pt",
    clips_per_batch: int = 8,
    reset_real_features: bool = True,
    clip_selection: str = "all",
) -> Metric:
    return VideoFrechetDistance(
        i3d_network(weights_dir, filename), protocol, "i3d", clips_per_batch, reset_real_features, clip_selection
    )


def _vfid_resnext(
    weights_dir: WeightsDir = None,
    protocol: str = "catv2ton",
    filename: str = "resnext-101.pth",
    clips_per_batch: int = 8,
    reset_real_features: bool = True,
    clip_selection: str = "all",
) -> Metric:
    return VideoFrechetDistance(
        resnext_network(weights_dir, filename),
        protocol,
        "resnext101",
        clips_per_batch,
        reset_real_features,
        clip_selection,
    )


def _fvd(
    weights_dir: WeightsDir = None,
    filename: str = "i3d_torchscript.pt",
    clips_per_batch: int = 8,
    reset_real_features: bool = True,
) -> Metric:
    return FrechetVideoDistance(
        load_fvd_detector(weights_dir, filename),
        clips_per_batch=clips_per_batch,
        reset_real_features=reset_real_features,
    )


_PAIRED_PROTOCOLS = {
    "standard": {"border": "valid", "net": "alex"},
    "catv2ton": {"border": "reflect", "net": "squeeze"},
}


def _paired_protocol(protocol: str) -> dict[str, str]:
    if protocol not in _PAIRED_PROTOCOLS:
        raise ValueError(f"unknown paired-metric protocol {protocol!r}; available: {sorted(_PAIRED_PROTOCOLS)}")
    return _PAIRED_PROTOCOLS[protocol]


def _ssim(window: str, masked: bool) -> Callable[..., Metric]:
    def factory(weights_dir: WeightsDir = None, protocol: str = "standard", border: str | None = None) -> Metric:
        return VideoSSIM(border=border or _paired_protocol(protocol)["border"], window=window, masked=masked)

    return factory


def _psnr(window: str, masked: bool) -> Callable[..., Metric]:
    def factory(weights_dir: WeightsDir = None) -> Metric:
        return VideoPSNR(window=window, masked=masked)

    return factory


def _lpips(window: str, masked: bool) -> Callable[..., Metric]:
    def factory(weights_dir: WeightsDir = None, protocol: str = "standard", net: str | None = None) -> Metric:
        return VideoLPIPS(
            net=net or _paired_protocol(protocol)["net"], weights_dir=weights_dir, window=window, masked=masked
        )

    return factory


def _isr_counterfactual(
    weights_dir: WeightsDir = None,
    contrast_threshold: float = 0.1,
    motion_threshold: float = 0.2,
    min_share: float = 0.7,
    max_error: float = 0.5,
    min_pixels: int = 8,
    use_mask: bool = True,
    use_context: bool = True,
    pool: int = 2,
) -> Metric:
    return InteractionSuccessRate(
        CounterfactualJudge(
            contrast_threshold, motion_threshold, min_share, max_error, min_pixels, use_mask, use_context, pool
        )
    )


_ISR_KEYS = ("counterfactual", "interaction_mask", "agnostic", "agnostic_mask", "meta")


def _isr_vlm(
    weights_dir: WeightsDir = None,
    model_path: str | None = None,
    prompt: str | None = None,
    num_frames: int = 8,
    max_new_tokens: int = 8,
    passive_prompt: str | None = None,
    generate_kwargs: dict | None = None,
) -> Metric:
    from itryon.metrics.vlm_judge import VLMJudge

    return InteractionSuccessRate(
        VLMJudge.from_pretrained(
            model_path,
            weights_dir=weights_dir,
            prompt=prompt,
            passive_prompt=passive_prompt,
            num_frames=num_frames,
            max_new_tokens=max_new_tokens,
            generate_kwargs=generate_kwargs,
        )
    )


def _specs() -> dict[str, MetricSpec]:
    specs = [
        MetricSpec(
            "vfid_i3d",
            _vfid_i3d,
            False,
            True,
            weight_files=("i3d.pt",),
            description="VFID with I3D Mixed_5c features (1024-d)",
        ),
        MetricSpec(
            "vfid_resnext",
            _vfid_resnext,
            False,
            True,
            weight_files=("resnext-101.pth",),
            description="VFID with 3D-ResNeXt-101 layer4 features (2048-d)",
        ),
        MetricSpec(
            "fvd",
            _fvd,
            False,
            True,
            weight_files=("i3d_torchscript.pt",),
            description="FVD, StyleGAN-V protocol (TorchScript I3D, 16-frame clips)",
        ),
        MetricSpec("psnr", _psnr("all", False), True, True, description="PSNR per frame, frames then videos"),
        MetricSpec(
            "psnr_interaction",
            _psnr("interaction", False),
            True,
            True,
            ("interaction",),
            description="PSNR on interaction frames",
        ),
        MetricSpec(
            "psnr_interaction_masked",
            _psnr("interaction", True),
            True,
            True,
            ("interaction", "interaction_mask"),
            description="PSNR on interaction frames inside interaction_mask",
        ),
        MetricSpec("ssim", _ssim("all", False), True, True, description="SSIM per frame, frames then videos"),
        MetricSpec(
            "ssim_interaction",
            _ssim("interaction", False),
            True,
            True,
            ("interaction",),
            description="SSIM on interaction frames",
        ),
        MetricSpec(
            "ssim_interaction_masked",
            _ssim("interaction", True),
            True,
            True,
            ("interaction", "interaction_mask"),
            description="SSIM on interaction frames inside interaction_mask",
        ),
        MetricSpec(
            "lpips",
            _lpips("all", False),
            False,
            True,
            weight_files=("alexnet-owt-7be5be79.pth",),
            description="LPIPS v0.1 per frame, frames then videos",
        ),
        MetricSpec(
            "lpips_interaction",
            _lpips("interaction", False),
            False,
            True,
            ("interaction",),
            weight_files=("alexnet-owt-7be5be79.pth",),
            description="LPIPS on interaction frames",
        ),
        MetricSpec(
            "lpips_interaction_masked",
            _lpips("interaction", True),
            False,
            True,
            ("interaction", "interaction_mask"),
            weight_files=("alexnet-owt-7be5be79.pth",),
            description="LPIPS on interaction frames inside interaction_mask",
        ),
        MetricSpec(
            "isr_counterfactual",
            _isr_counterfactual,
            True,
            True,
            ("actions",),
            _ISR_KEYS,
            description="interaction success rate, counterfactual judge (synthetic world), per family and at chance",
        ),
        MetricSpec(
            "isr_vlm",
            _isr_vlm,
            True,
            False,
            ("actions",),
            ("caption", "meta"),
            description="interaction success rate, local video-language-model judge",
        ),
    ]
    out = {s.name: s for s in specs}
    out["isr"] = MetricSpec(
        "isr", _isr_counterfactual, True, True, ("actions",), _ISR_KEYS, description="alias of isr_counterfactual"
    )
    return out


METRICS: dict[str, MetricSpec] = _specs()


def available_metrics() -> list[str]:
    return sorted(METRICS)


def metric_spec(name: str) -> MetricSpec:
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; available: {', '.join(available_metrics())}")
    return METRICS[name]


def build_metric(name: str, weights_dir: WeightsDir = None, **options: Any) -> Metric:
    """Build metric ``name``; unknown options raise a ``TypeError`` listing the accepted ones."""
    spec = metric_spec(name)
    unknown = sorted(set(options) - set(spec.options()))
    if unknown:
        raise TypeError(f"metric {name!r} got unknown option(s) {unknown}; accepted: {spec.options()}")
    return spec.factory(weights_dir=weights_dir, **options)


def metric_extras(spec: MetricSpec, batch: Mapping[str, Any]) -> dict[str, Any]:
    """The batch entries ``spec`` reads; a missing required key raises naming the metric and the key."""
    missing = [k for k in spec.required_keys if k not in batch]
    if missing:
        raise KeyError(f"metric {spec.name!r} needs batch key(s) {missing}; the batch has {sorted(batch)}")
    keys = spec.required_keys + tuple(k for k in spec.optional_keys if k in batch)
    return {k: batch[k] for k in keys}


def flatten_result(name: str, value: torch.Tensor | Mapping[str, torch.Tensor] | float) -> dict[str, float]:
    """``{name: v}`` for a scalar; for a dict, ``"value"`` maps to ``name`` and other keys to ``name_<key>``."""
    if isinstance(value, Mapping):
        return {name if k == "value" else f"{name}_{k}": float(v) for k, v in value.items()}
    return {name: float(value)}
