"""Optimisers of the training module: AdamW, or torch's Muon on the transformer blocks' weight matrices with AdamW
on every other parameter.

Muon orthogonalises each update of a weight matrix (Newton-Schulz iterations on the momentum), which trains the
hidden matrices of a transformer in fewer steps than AdamW; embeddings, heads, biases, norms, convolutions and the
conditioning adapters keep AdamW. ``adjust_lr_fn="match_rms_adamw"`` scales Muon's update to AdamW's RMS, so both
share one learning rate and one schedule.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
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


class _RoutedState(MutableMapping):
    """The per-parameter state of several optimisers as one mapping: each key reads and writes the state of the
    optimiser that owns the parameter (a ChainMap would create entries in the first one, whose ``state_dict``
    then fails on a parameter it does not own)."""

    def __init__(self, optimizers: Sequence[Optimizer]) -> None:
        self._owner = {id(p): opt for opt in optimizers for group in opt.param_groups for p in group["params"]}
        self._optimizers = list(optimizers)

    def _state_of(self, key: Any) -> Any:
        owner = self._owner.get(id(key))
        if owner is None:
            raise KeyError(f"a tensor of shape {tuple(getattr(key, 'shape', ()))} that no inner optimiser trains")
        return owner.state

    def __getitem__(self, key: Any) -> Any:
        return self._state_of(key)[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._state_of(key)[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._state_of(key)[key]

    def __iter__(self) -> Iterator[Any]:
        for opt in self._optimizers:
            yield from opt.state

    def __len__(self) -> int:
        return sum(len(opt.state) for opt in self._optimizers)


def _closure_loss(closure: Callable[[], Any] | None) -> Any:
    """The loss of an optimiser step's ``closure`` (evaluated with gradients on), or None without one."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def _newton_schulz(
    updates: torch.Tensor, coefficients: tuple[float, float, float], steps: int, eps: float
) -> torch.Tensor:
    """torch's Muon orthogonalisation (quintic Newton-Schulz in bfloat16) of a stack ``(n, A, B)`` of same-shape
    matrices at once."""
    a, b, c = coefficients
    x = updates.bfloat16()
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


def _muon_lr_ratio(adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """The learning-rate factor torch's Muon gives a matrix of ``shape`` for ``adjust_lr_fn``."""
    rows, cols = shape[:2]
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    if adjust_lr_fn == "spectral_unclamped":
        return math.sqrt(rows / cols)
    return math.sqrt(max(1, rows / cols))  # None or "original"


class StackedMuon(torch.optim.Muon):
    """``torch.optim.Muon`` with the same update, state and arguments, whose Newton-Schulz iterations run once per
    group of same-shape matrices (batched products) instead of once per matrix: torch steps one matrix at a time,
    which for the small matrices of CPU-sized models costs more in dispatch than in arithmetic."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = _closure_loss(closure)
        for group in self.param_groups:
            params: list[torch.Tensor] = []
            grads: list[torch.Tensor] = []
            buffers: list[torch.Tensor] = []
            self._init_group(group, params, grads, buffers)
            if not params:
                continue
            lr, momentum, decay = float(group["lr"]), group["momentum"], group["weight_decay"]
            # torch.optim.Muon refuses non-2-D parameters at construction
            torch._foreach_lerp_(buffers, grads, 1 - momentum)
            updates = torch._foreach_lerp(grads, buffers, momentum) if group["nesterov"] else buffers
            same_shape: dict[tuple, list[int]] = {}
            for i, p in enumerate(params):
                same_shape.setdefault((tuple(p.shape), p.dtype, p.device), []).append(i)
            for (shape, _, _), members in same_shape.items():
                ortho = _newton_schulz(
                    torch.stack([updates[i] for i in members]),
                    group["ns_coefficients"],
                    group["ns_steps"],
                    group["eps"],
                )
                scaled_lr = lr * _muon_lr_ratio(group["adjust_lr_fn"], torch.Size(shape))
                for j, i in enumerate(members):
                    params[i].mul_(1 - lr * decay)
                    params[i].add_(ortho[j], alpha=-scaled_lr)
        return loss


class MuonAdamW(Optimizer):
    """One optimiser (Lightning's automatic optimisation steps one) made of ``torch.optim.Muon`` over ``matrices`` and
    ``torch.optim.AdamW`` over ``groups``.

    ``param_groups`` are the two optimisers' own groups, so learning-rate schedulers drive both; the state lives in
    the two optimisers, seen through ``state`` as one mapping, and ``state_dict`` has torch's usual layout.
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
        self.muon = StackedMuon(
            list(matrices), lr=lr, weight_decay=weight_decay, momentum=momentum, adjust_lr_fn="match_rms_adamw"
        )
        groups = [g for g in groups if g["params"]]
        self.adamw = torch.optim.AdamW(groups, lr=lr, betas=betas) if groups else None
        inner = [self.muon, *([self.adamw] if self.adamw is not None else [])]
        params = [p for opt in inner for group in opt.param_groups for p in group["params"]]
        super().__init__(params, {"lr": lr})
        self.param_groups = [group for opt in inner for group in opt.param_groups]  # the same dicts: one schedule
        self._inner = inner
        self._state = _RoutedState(inner)  # built once: the parameters and their owners do not change

    @property
    def state(self) -> _RoutedState:  # type: ignore[override]
        routed = getattr(self, "_state", None)  # None only inside Optimizer.__init__
        return routed if routed is not None else _RoutedState(())

    @state.setter
    def state(self, value: Any) -> None:
        pass  # the two optimisers hold the state (Optimizer.__init__ assigns an empty one)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = _closure_loss(closure)
        for opt in self._inner:
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self._inner:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        # torch's layout (parameters numbered over param_groups, Muon's groups first), which torch.distributed's
        # checkpoint helpers and FSDP2 expect of any optimiser
        return super().state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        sizes = [len(g["params"]) for g in self.param_groups]
        if groups is None or "state" not in state_dict or [len(g["params"]) for g in groups] != sizes:
            got = [len(g["params"]) for g in groups] if groups is not None else None
            raise ValueError(
                f"a MuonAdamW state has {len(sizes)} parameter groups of {sizes} parameters (Muon's first), got "
                f"{got} (a checkpoint of another optimiser or model: resume with the optimizer it was trained with)"
            )
        first = 0
        for opt in self._inner:
            own = groups[first : first + len(opt.param_groups)]
            first += len(opt.param_groups)
            index = {old: new for new, old in enumerate(i for g in own for i in g["params"])}
            opt.load_state_dict(
                {
                    "state": {index[i]: v for i, v in state_dict["state"].items() if i in index},
                    "param_groups": [{**g, "params": [index[i] for i in g["params"]]} for g in own],
                }
            )
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
    if name == "muon" and not matrices:
        warnings.warn(
            "optimizer 'muon': the backbone lists no transformer block with weight matrices "
            "(Backbone.transformer_blocks), so every parameter trains with AdamW",
            stacklevel=2,
        )
        name = "adamw"
    taken = {id(p) for p in matrices}
    rest = [p for p in params if id(p) not in taken]
    groups = [
        {"params": [p for p in rest if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in rest if p.ndim < 2], "weight_decay": 0.0},
    ]
    if name == "adamw":
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas)
    return MuonAdamW(matrices, groups, lr=lr, betas=betas, weight_decay=weight_decay)
