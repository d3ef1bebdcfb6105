"""The counterfactual interaction judge of the synthetic world: exact, judge-free and not gameable by degenerate outputs.

Every synthetic clip comes with a counterfactual ``cf``: the same clip with the response it could be
confused with (no response for an action, the response for a passive gesture, the other response or
the other order for the benchmark families). On the frames judged, the real clip ``r`` and ``cf`` differ
on the *contrast pixels* ``C = {|r - cf| > contrast_threshold}`` (largest channel). A generated clip ``g``
reproduces the real clip when

1. **contrast test** on ``C``: the generated change reproduces a large share of the real change,
   ``share = <g - cf, r - cf> / |r - cf|^2 >= min_share``, and stays close to the real clip relative
   to the real-counterfactual gap, ``error = |g - r| / |r - cf| <= max_error``;
2. **context test** on the *moving pixels* ``M`` (outside ``C``, inside ``agnostic_mask`` when given,
   where the real clip departs from its own temporal mean ``s`` by more than ``motion_threshold``): the
   same two bounds with ``s`` in the role of ``cf``. A still or time-shifted output cannot follow the
   real motion; with no moving pixel the test has nothing to check and passes.

All videos are first averaged over cells of ``pool x pool`` pixels (masks: a cell is in when any of
its pixels is), so a slightly blurred but correct response still passes; "pixels" below are cells.
Sums run over cells and channels of the judged frames. With fewer than ``min_pixels`` contrast cells
(``C`` restricted to ``interaction_mask`` for actions when ``use_mask``) the verdict is undecidable. A 50/50 blend of ``r`` and ``cf`` has ``share = error = 0.5``; a constant, noise, a still
frame, the agnostic input or the clip shifted in time fail one of the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from itryon.metrics.interaction_judge import JudgedClip


@dataclass(frozen=True)
class Reproduction:
    """How well a generated change reproduces a reference change on a set of pixels."""

    share: float  # <g - base, r - base> / |r - base|^2
    error: float  # |g - r| / |r - base|
    pixels: int

    def passes(self, min_share: float, max_error: float) -> bool:
        return self.share >= min_share and self.error <= max_error  # NaN fails


@dataclass(frozen=True)
class Assessment:
    """The two tests on one judged span; ``context`` is None when nothing moves outside the contrast pixels."""

    contrast: Reproduction
    context: Reproduction | None
    passed: bool


def reproduction(generated: torch.Tensor, real: torch.Tensor, base: torch.Tensor, where: torch.Tensor) -> Reproduction:
    """``generated``, ``real``, ``base`` ``(3, t, h, w)``; ``where`` bool ``(t, h, w)``: the pixels (cells) summed over."""
    g, r, b = (x[:, where].double() for x in (generated, real, base))  # (3, n)
    change = r - b
    gap = float(change.square().sum())
    if gap <= 0.0:
        return Reproduction(math.nan, math.nan, int(g.shape[1]))
    share = float(((g - b) * change).sum()) / gap
    error = math.sqrt(float((g - r).square().sum()) / gap)
    return Reproduction(share, error, int(g.shape[1]))


class CounterfactualJudge:
    """Judge for the synthetic world (module docstring): an action succeeds when the generated video reproduces
    the real one against the counterfactual in the action's window; a passive clip (no actions) shows a false
    interaction unless the generated video reproduces the real, response-free clip over the whole clip.

    A passive verdict is "no false interaction" only for a generation that passes both tests, so a degenerate
    output (black, noise, a still frame, the agnostic input) counts as a false interaction, not as a success.
    """

    name = "counterfactual"
    batch_keys = ("video", "counterfactual", "actions", "interaction_mask", "agnostic_mask")

    def __init__(
        self,
        contrast_threshold: float = 0.1,
        motion_threshold: float = 0.2,
        min_share: float = 0.7,
        max_error: float = 0.5,
        min_pixels: int = 8,
        use_mask: bool = True,
        use_context: bool = True,
        pool: int = 2,
    ) -> None:
        if not 0.5 < min_share <= 1.0 or not 0.0 < max_error < 1.0:
            raise ValueError(
                f"need 0.5 < min_share <= 1 and 0 < max_error < 1 (else a 50/50 blend or the counterfactual passes), got {min_share}, {max_error}"
            )
        if pool < 1:
            raise ValueError(f"pool (cell size in pixels) must be >= 1, got {pool}")
        self.pool = pool
        self.contrast_threshold, self.motion_threshold = contrast_threshold, motion_threshold
        self.min_share, self.max_error, self.min_pixels = min_share, max_error, min_pixels
        self.use_mask, self.use_context = use_mask, use_context

    def describe(self) -> dict:
        keys = (
            "contrast_threshold",
            "motion_threshold",
            "min_share",
            "max_error",
            "min_pixels",
            "use_mask",
            "use_context",
            "pool",
        )
        return {k: getattr(self, k) for k in keys}

    def _pool(self, x: torch.Tensor, mask: bool = False) -> torch.Tensor:
        """``x`` ``(C, t, H, W)`` -> ``(C, t, H', W')``, averaged (masks: max) over ``pool x pool`` cells."""
        if self.pool == 1:
            return x
        f = torch.nn.functional.max_pool2d if mask else torch.nn.functional.avg_pool2d
        return f(x, self.pool, ceil_mode=True) if mask else f(x, self.pool, ceil_mode=True, count_include_pad=False)

    def assess(self, clip: JudgedClip, frames: slice, use_mask: bool) -> Assessment | None:
        """Both tests on ``frames`` of ``clip``; None (undecidable) with fewer than ``min_pixels`` contrast pixels."""
        if clip.video is None or clip.counterfactual is None:
            raise ValueError(
                "CounterfactualJudge needs the batch keys 'video' and 'counterfactual' for every judged clip"
            )
        for key in ("video", "counterfactual"):
            if tuple(getattr(clip, key).shape) != tuple(clip.generated.shape):
                raise ValueError(
                    f"CounterfactualJudge: '{key}' has shape {tuple(getattr(clip, key).shape)}, the generated video {tuple(clip.generated.shape)}"
                )
        g, r, cf = (
            self._pool(x[:, frames].float()) for x in (clip.generated, clip.video, clip.counterfactual)
        )  # (3, t, H', W') cells
        different = (r - cf).abs().amax(0) > self.contrast_threshold  # (t, H', W')
        contrast = different
        if use_mask and clip.interaction_mask is not None:
            contrast = contrast & (
                self._pool(clip.interaction_mask[:, frames].float(), mask=True)[0].to(g.device) > 0.5
            )
        if int(contrast.sum()) < self.min_pixels:
            return None
        result = reproduction(g, r, cf, contrast)
        context = None
        if self.use_context:
            still = self._pool(clip.video.float().mean(dim=1, keepdim=True)).expand_as(
                r
            )  # (3, t, H', W'): the real clip's temporal mean
            moving = ((r - still).abs().amax(0) > self.motion_threshold) & ~different
            if clip.agnostic_mask is not None:
                moving = moving & (self._pool(clip.agnostic_mask[:, frames].float(), mask=True)[0].to(g.device) > 0.5)
            if int(moving.sum()) >= self.min_pixels:
                context = reproduction(g, r, still, moving)
        passed = result.passes(self.min_share, self.max_error) and (
            context is None or context.passes(self.min_share, self.max_error)
        )
        return Assessment(result, context, passed)

    def judge_actions(self, clip: JudgedClip) -> list[bool | None]:
        verdicts = []
        for a in clip.actions:
            assessment = self.assess(clip, slice(int(a["start"]), int(a["end"])), self.use_mask)
            verdicts.append(None if assessment is None else assessment.passed)
        return verdicts

    def judge_passive(self, clip: JudgedClip) -> bool | None:
        if clip.video is None or clip.counterfactual is None:
            return None
        assessment = self.assess(clip, slice(None), use_mask=False)  # a passive clip has no interaction region
        return None if assessment is None else not assessment.passed
