"""Flow-matching loss with the action-aware constraint (AC) term of iTryOn.

``L = L_flow + lambda * E[ || M_action * (v_hat - v) ||^2 ]`` where ``M_action`` marks latent frames that
contain an interaction (a latent frame counts when any of its source frames does), optionally narrowed to
the ``interaction_mask`` region. Both expectations are means over all latent elements, so the AC term is the
flow loss restricted to interaction frames and scaled by their share, as the paper writes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from itryon.data.temporal import frames_to_latent


class ActionConstraintLoss(nn.Module):
    """Velocity MSE plus ``ac_weight`` times the MSE inside interaction frames (and regions).

    ``ac_weight = 0`` is exactly the plain flow-matching loss.
    """

    def __init__(self, ac_weight: float = 0.5, use_region: bool = False) -> None:
        super().__init__()
        if ac_weight < 0:
            raise ValueError(f"ac_weight must be >= 0, got {ac_weight}")
        self.ac_weight = ac_weight
        self.use_region = use_region

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
            pooled = frames_to_latent(pooled.permute(0, 2, 3, 1), temporal_compression).permute(0, 3, 1, 2)  # (B, F, H, W)
            pooled = F.adaptive_max_pool2d(pooled, (h, w)).unsqueeze(1)  # (B, 1, F, h, w)
            mask = mask * pooled
        return mask

    def forward(self, pred: torch.Tensor, target: torch.Tensor, action_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"loss", "flow", "ac"}`` for velocity prediction ``pred`` and ``target`` ``(B, C, F, h, w)``."""
        diff = (pred.float() - target.float()).square()
        flow = diff.mean()
        if action_mask is None or self.ac_weight == 0:
            return {"loss": flow, "flow": flow, "ac": torch.zeros_like(flow)}
        ac = (diff * action_mask.float().square()).mean()
        return {"loss": flow + self.ac_weight * ac, "flow": flow, "ac": ac}
