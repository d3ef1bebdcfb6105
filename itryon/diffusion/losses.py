"""The training objective: flow-matching regression in a named space and weighting, plus iTryOn's AC term.

``L = E_t[ w(t) * ( ||e||^2 + lambda * ||M_action * e||^2 ) ]`` where ``e`` is the prediction error measured in
``space`` and ``w(t)`` is the ``weighting`` scheme; ``M_action`` marks latent frames that contain an interaction (a
latent frame counts when any of its source frames does), optionally narrowed to the ``interaction_mask`` region.
Both expectations are means over all latent elements, so the AC term is the loss restricted to interaction frames and
scaled by their share, as the paper writes it.

On the rectified flow ``x_t = (1 - t) x_0 + t * noise`` every parametrisation gives both a velocity ``v_hat`` and a
clean sample ``x0_hat = x_t - t * v_hat``, and their errors are tied by ``||x0_hat - x0|| = t * ||v_hat - v||``.
The loss weight that a clean-sample error receives at time ``t`` is therefore (:func:`effective_x0_weight`):

==================  ====================  ======================================================================
``space``           ``weighting``         weight of ``||x0_hat - x0||^2`` at ``t``
==================  ====================  ======================================================================
``velocity``        ``none``              ``1 / t^2`` (Wan2.1, SD3 "none"): the high-noise end weighs least
``x0``              ``none``              ``1``: every noise level alike
``velocity``        ``sigma_sqrt``        ``1 / t^4``
``velocity``        ``cosmap``            ``2 / (pi (1 - 2t + 2t^2)) / t^2``
``x0``              ``sigma_sqrt``        ``1 / t^2``
``x0``              ``cosmap``            ``2 / (pi (1 - 2t + 2t^2))``
==================  ====================  ======================================================================

The weighting schemes are diffusers' (``compute_loss_weighting_for_sd3``), applied per sample; the density of ``t``
is the :class:`~itryon.diffusion.FlowMatching` sampler's and multiplies all of these.

What the backbone itself learns is the error of its own output: a velocity predictor's output error is
``||v_hat - v||`` (weight ``t^2`` times the table's), a clean-sample predictor's is ``||x0_hat - x0||`` (the table's
weight) -- :func:`output_error_weight`. Velocity MSE on a clean-sample predictor weighs its error by ``1 / t^2``, so
the times near ``t = 1`` where sampling starts get almost no weight; :func:`high_noise_weight_ratio` measures that and
:class:`~itryon.training.TryOnModule` warns when it is small.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from diffusers.training_utils import compute_loss_weighting_for_sd3
from torch import nn

from itryon.data.temporal import frames_to_latent

LossSpace = Literal["velocity", "x0"]
LossWeighting = Literal["none", "sigma_sqrt", "cosmap"]
LOSS_SPACES = ("velocity", "x0")
LOSS_WEIGHTINGS = ("none", "sigma_sqrt", "cosmap")


def loss_weighting(weighting: str, t: torch.Tensor) -> torch.Tensor:
    """Per-sample weight ``(B,)`` of scheme ``weighting`` at flow times ``t`` ``(B,)`` (``sigma = t``)."""
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"loss weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
    return compute_loss_weighting_for_sd3(weighting, sigmas=t.float())


def effective_x0_weight(space: str, weighting: str, t: torch.Tensor) -> torch.Tensor:
    """The weight that the objective gives a clean-sample squared error at time ``t`` (see the module table)."""
    if space not in LOSS_SPACES:
        raise ValueError(f"loss space must be one of {LOSS_SPACES}, got {space!r}")
    w = loss_weighting(weighting, t)
    return w / t.float().square() if space == "velocity" else w


def output_error_weight(prediction: str, space: str, weighting: str, t: torch.Tensor) -> torch.Tensor:
    """The weight the objective gives the squared error of the backbone's own output (``prediction`` is
    ``velocity`` or ``sample``) at time ``t``."""
    if prediction not in ("velocity", "sample"):
        raise ValueError(f"prediction must be 'velocity' or 'sample', got {prediction!r}")
    w = effective_x0_weight(space, weighting, t)
    return w * t.float().square() if prediction == "velocity" else w


def high_noise_weight_ratio(
    flow, loss: ActionConstraintLoss, prediction: str, start: float = 0.9, samples: int = 200_000
) -> float:
    """Mean output-error weight of training times ``t >= start`` over the mean weight of all training times.

    1 means the high-noise end, where sampling starts, is trained like any other time; values near 0 mean it is
    starved. ``flow`` is a :class:`~itryon.diffusion.FlowMatching` (its density and shift); Monte Carlo with a fixed
    seed, so the value is reproducible.
    """
    t = flow.sample_t(samples, generator=torch.Generator().manual_seed(0)).double()
    w = output_error_weight(prediction, loss.space, loss.weighting, t).double()
    high = t >= start
    if not bool(high.any()):
        return 0.0
    return float(w[high].mean() / w.mean())


class ActionConstraintLoss(nn.Module):
    """Weighted MSE in ``space`` plus ``ac_weight`` times the same MSE inside interaction frames (and regions).

    ``ac_weight = 0`` is exactly the plain flow-matching loss. ``space`` and ``weighting`` are documented in the
    module docstring; ``space="x0"`` trains every noise level alike whatever the backbone predicts.
    ``outside_weight`` weighs the latent elements outside the generation region (the ``region`` the module passes:
    latent pixels holding any pixel of ``agnostic_mask``); 1 (the default) is the plain loss, below 1 spends the
    training signal on the region a try-on model generates, for models whose output keeps the input elsewhere
    (``TryOnModule(paste_back=True)``).
    """

    def __init__(
        self,
        ac_weight: float = 0.5,
        use_region: bool = False,
        space: LossSpace = "velocity",
        weighting: LossWeighting = "none",
        outside_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if ac_weight < 0:
            raise ValueError(f"ac_weight must be >= 0, got {ac_weight}")
        if outside_weight < 0:
            raise ValueError(f"outside_weight must be >= 0, got {outside_weight}")
        if space not in LOSS_SPACES:
            raise ValueError(f"loss space must be one of {LOSS_SPACES}, got {space!r}")
        if weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
        self.ac_weight = ac_weight
        self.use_region = use_region
        self.space = space
        self.weighting = weighting
        self.outside_weight = float(outside_weight)

    def action_mask(
        self,
        interaction: torch.Tensor,
        latent_shape: torch.Size | tuple[int, ...],
        temporal_compression: int,
        region: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``M_action`` broadcastable to latents ``(B, C, F, h, w)``.

        ``interaction``: per-frame weights ``(B, T)``; ``region``: ``interaction_mask`` ``(B, 1, T, H, W)``
        pooled (max) onto the latent grid when ``use_region`` is set.
        """
        frames = frames_to_latent((interaction > 0).float(), temporal_compression)  # (B, F)
        b, _, f, h, w = latent_shape
        if frames.shape[-1] != f:
            raise ValueError(f"interaction maps to {frames.shape[-1]} latent frames but the latents have {f}")
        mask = frames.view(b, 1, f, 1, 1)
        if self.use_region:
            if region is None:
                raise ValueError("ActionConstraintLoss(use_region=True) needs the batch key 'interaction_mask'")
            pooled = region.float().amax(dim=1)  # (B, T, H, W)
            pooled = frames_to_latent(pooled.permute(0, 2, 3, 1), temporal_compression).permute(
                0, 3, 1, 2
            )  # (B, F, H, W)
            pooled = F.adaptive_max_pool2d(pooled, (h, w)).unsqueeze(1)  # (B, 1, F, h, w)
            mask = mask * pooled
        return mask

    def forward(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        action_mask: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        region: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``{"loss", "flow", "ac"}`` for a prediction and its target ``(B, C, F, h, w)`` in ``space``.

        ``t`` ``(B,)`` are the flow times of the samples; it may be omitted only with ``weighting="none"``.
        ``region`` ``(B, 1, F, h, w)`` in {0, 1} is needed when ``outside_weight != 1``.
        """
        diff = (pred.float() - target.float()).square()
        if self.outside_weight != 1.0:
            if region is None:
                raise ValueError(
                    f"ActionConstraintLoss(outside_weight={self.outside_weight}) needs the generation region"
                )
            diff = diff * (region.float() + self.outside_weight * (1.0 - region.float()))
        if self.weighting != "none":
            if t is None:
                raise ValueError(f"ActionConstraintLoss(weighting={self.weighting!r}) needs the flow times t (B,)")
            diff = diff * loss_weighting(self.weighting, t).to(diff.device).view(-1, *([1] * (diff.ndim - 1)))
        flow = diff.mean()
        if action_mask is None or self.ac_weight == 0:
            return {"loss": flow, "flow": flow, "ac": torch.zeros_like(flow)}
        ac = (diff * action_mask.float().square()).mean()
        return {"loss": flow + self.ac_weight * ac, "flow": flow, "ac": ac}


def _gaussian_band(n: int, size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """``(n - size + 1, n)``: row ``i`` holds the normalised Gaussian window over pixels ``i .. i + size - 1``."""
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-x.square() / (2 * sigma**2))
    g = g / g.sum()
    band = torch.zeros(n - size + 1, n, dtype=like.dtype, device=like.device)
    rows = torch.arange(n - size + 1, device=like.device)
    band[rows.unsqueeze(1), rows.unsqueeze(1) + torch.arange(size, device=like.device)] = g
    return band


def ssim_valid(
    pred: torch.Tensor, target: torch.Tensor, size: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03
) -> torch.Tensor:
    """SSIM per image ``(N,)`` of images ``(N, C, H, W)`` in [0, 1] over the pixels whose window lies inside the image,
    channels averaged: the value of :class:`itryon.metrics.paired.VideoSSIM` (``border="valid"``), differentiable.

    The Gaussian window is applied as two banded matrix products (rows, then columns), a few times cheaper on CPU
    than the depthwise 2-D convolution torchmetrics runs.
    """
    _, c, h, w = pred.shape
    if h < size or w < size:
        raise ValueError(f"ssim_valid needs images of at least {size}x{size} pixels, got {h}x{w}")
    rows, cols = _gaussian_band(h, size, sigma, pred), _gaussian_band(w, size, sigma, pred)
    stack = torch.cat([pred, target, pred * pred, target * target, pred * target], 1)  # (N, 5C, H, W)
    mu_x, mu_y, xx, yy, xy = (rows @ stack @ cols.T).split(c, dim=1)
    var_x, var_y, cov = xx - mu_x.square(), yy - mu_y.square(), xy - mu_x * mu_y
    c1, c2 = k1**2, k2**2
    maps = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return maps.flatten(1).mean(1)


def _ssim_inside(pred: torch.Tensor, target: torch.Tensor, changed: torch.Tensor, size: int = 11) -> torch.Tensor:
    """:func:`ssim_valid` averaged over all images, for images equal outside the pixels ``changed`` ``(H, W)``: a
    window without changed pixels scores exactly 1, so only the crop holding the windows that reach them is computed."""
    h, w = changed.shape
    rows, cols = changed.any(1).nonzero().flatten(), changed.any(0).nonzero().flatten()
    valid = (h - size + 1) * (w - size + 1)
    if len(rows) == 0:
        return pred.new_ones(())
    reach = size - 1
    r0, r1 = max(0, int(rows[0]) - reach), min(h, int(rows[-1]) + reach + 1)
    c0, c1 = max(0, int(cols[0]) - reach), min(w, int(cols[-1]) + reach + 1)
    r0, c0 = min(r0, h - size), min(c0, w - size)  # the crop holds at least one window
    r1, c1 = max(r1, r0 + size), max(c1, c0 + size)
    inside = (r1 - r0 - size + 1) * (c1 - c0 - size + 1)
    crop = ssim_valid(pred[..., r0:r1, c0:c1], target[..., r0:r1, c0:c1], size=size).mean()
    return (crop * inside + (valid - inside)) / valid


class DecodedLoss(nn.Module):
    """A reconstruction term on the decoded clean prediction, in pixels: ``ssim_weight * (1 - SSIM) + l1_weight * L1``.

    The module decodes ``x0_hat`` with its (differentiable) VAE, keeps the person video's own pixels outside
    ``agnostic_mask`` when ``paste_back`` is set (the composite generation returns), and compares with the video.
    Latent MSE alone trains the conditional mean, which blurs what the conditions leave uncertain; the structural term
    rewards committing to edges and patterns the garment and pose determine. SSIM uses the evaluation's window
    (Gaussian, 11 taps, sigma 1.5) on frames mapped to [0, 1].
    """

    def __init__(self, ssim_weight: float = 1.0, l1_weight: float = 0.0, paste_back: bool = True) -> None:
        super().__init__()
        if ssim_weight < 0 or l1_weight < 0:
            raise ValueError(f"DecodedLoss weights must be >= 0, got ssim_weight={ssim_weight}, l1_weight={l1_weight}")
        if ssim_weight == 0 and l1_weight == 0:
            raise ValueError("DecodedLoss needs ssim_weight > 0 or l1_weight > 0")
        self.ssim_weight = float(ssim_weight)
        self.l1_weight = float(l1_weight)
        self.paste_back = paste_back

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The term for decoded predictions and videos ``(B, 3, T, H, W)`` in [-1, 1]; ``mask`` ``(B, 1, T, H, W)``
        is 1 where pixels are generated (needed with ``paste_back``)."""
        if pred.shape != target.shape:
            raise ValueError(f"DecodedLoss: prediction {tuple(pred.shape)} and video {tuple(target.shape)} differ")
        pred, target = pred.float(), target.float()
        if self.paste_back:
            if mask is None:
                raise ValueError("DecodedLoss(paste_back=True) needs the generation mask (batch key 'agnostic_mask')")
            keep = 1.0 - mask.float()
            pred = pred * (1.0 - keep) + target * keep
        loss = pred.new_zeros(())
        if self.l1_weight:
            loss = loss + self.l1_weight * (pred - target).abs().mean()
        if self.ssim_weight:
            frames = lambda v: v.transpose(1, 2).flatten(0, 1).add(1).div(2)  # noqa: E731  (B*T, 3, H, W) in [0, 1]
            pred, target = frames(pred), frames(target)
            if self.paste_back:
                ssim = _ssim_inside(pred, target, mask.amax(dim=(0, 1, 2)) > 0)
            else:
                ssim = ssim_valid(pred, target).mean()
            loss = loss + self.ssim_weight * (1.0 - ssim)
        return loss
