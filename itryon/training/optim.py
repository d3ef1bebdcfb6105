"""Optimisers of the training module: AdamW, or torch's Muon on the transformer blocks' weight matrices with AdamW
on every other parameter.

Muon orthogonalises each update of a weight matrix (Newton-Schulz iterations on the momentum), which trains the
hidden matrices of a transformer in fewer steps than AdamW; embeddings, heads, biases, norms, convolutions and the
conditioning adapters keep AdamW. ``adjust_lr_fn="match_rms_adamw"`` scales Muon's update to AdamW's RMS, so both
share one learning rate and one schedule.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

OPTIMIZERS = ("adamw", "muon")


def block_matrices(blocks: Iterable[nn.Module]) -> list[nn.Parameter]:
    """The trainable 2-D weights of the ``nn.Linear`` layers inside ``blocks``, each once."""
    seen: set[int] = set()
    out = []
    for block in blocks:
        for layer in block.modules():
            weight = getattr(layer, "weight", None)
            if isinstance(layer, nn.Linear) and weight is not None and weight.requires_grad and id(weight) not in seen:
                seen.add(id(weight))
                out.append(weight)
    return out


class MuonAdamW(Optimizer):
    """One optimiser (Lightning's automatic optimisation steps one) made of ``torch.optim.Muon`` over ``matrices`` and
    ``torch.optim.AdamW`` over ``groups``.

    ``param_groups`` are the two optimisers' own groups, so learning-rate schedulers drive both; the state lives in
    the two optimisers and ``state_dict`` holds both.
    """

    def __init__(
        self,
        matrices: Sequence[nn.Parameter],
        groups: Sequence[dict[str, Any]],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 0.0,
        momentum: float = 0.95,
    ) -> None:
        if not matrices:
            raise ValueError("MuonAdamW needs at least one weight matrix for Muon (the backbone lists no block)")
        self.muon = torch.optim.Muon(
            list(matrices), lr=lr, weight_decay=weight_decay, momentum=momentum, adjust_lr_fn="match_rms_adamw"
        )
        groups = [g for g in groups if g["params"]]
        self.adamw = torch.optim.AdamW(groups, lr=lr, betas=betas) if groups else None
        inner = [self.muon, *([self.adamw] if self.adamw is not None else [])]
        params = [p for opt in inner for group in opt.param_groups for p in group["params"]]
        super().__init__(params, {"lr": lr})
        self.param_groups = [group for opt in inner for group in opt.param_groups]  # the same dicts: one schedule
        self._inner = inner

    @property
    def state(self) -> ChainMap:  # type: ignore[override]
        return ChainMap(*(opt.state for opt in getattr(self, "_inner", ())))

    @state.setter
    def state(self, value: Any) -> None:
        pass  # the two optimisers hold the state (Optimizer.__init__ assigns an empty one)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self._inner:
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self._inner:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict() if self.adamw is not None else None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"muon", "adamw"}:
            raise ValueError(
                f"a MuonAdamW state holds 'muon' and 'adamw' entries, got {sorted(state_dict)} (a checkpoint of "
                "another optimiser: resume with the optimizer it was trained with)"
            )
        self.muon.load_state_dict(state_dict["muon"])
        if self.adamw is not None:
            self.adamw.load_state_dict(state_dict["adamw"])
        self.param_groups = [group for opt in self._inner for group in opt.param_groups]


def build_optimizer(
    name: str,
    params: Sequence[nn.Parameter],
    blocks: Iterable[nn.Module],
    lr: float,
    betas: tuple[float, float],
    weight_decay: float,
) -> Optimizer:
    """``adamw`` (weight decay on matrices only) or ``muon`` (Muon on the 2-D weights of ``blocks``' linear layers)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    matrices = block_matrices(blocks) if name == "muon" else []
    taken = {id(p) for p in matrices}
    rest = [p for p in params if id(p) not in taken]
    groups = [
        {"params": [p for p in rest if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in rest if p.ndim < 2], "weight_decay": 0.0},
    ]
    if name == "adamw":
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas)
    return MuonAdamW(matrices, groups, lr=lr, betas=betas, weight_decay=weight_decay)
