"""The conditioning stack: runs the configured adapters, applies CFG dropout and routes outputs by kind."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from itryon.conditioning.base import LATENT_KINDS, AdapterOutput, ConditionEnv, ConditioningAdapter
from itryon.models.backbone import Backbone, BackboneInputs


@dataclass(frozen=True)
class Conditions:
    """What the conditioning gives for a batch: the backbone's inputs, and what the module itself uses."""

    inputs: BackboneInputs  # everything the backbone reads besides the noisy latents and the timestep
    estimate: torch.Tensor | None = None  # (B, C, F, h, w): an adapter's first guess of the clean latents


class ConditioningStack(nn.Module):
    """Builds the backbone inputs from a batch with a dictionary of named adapters.

    * Outputs are routed by kind into one :class:`~itryon.models.backbone.BackboneInputs`: channels and VACE contexts
      concatenate along channels (in adapter order), reference frames (and VACE-context reference frames) along time, tokens along the sequence,
      residuals add, contexts concatenate along ``L``; the context tokens of adapters declared ``gated`` are marked
      in ``BackboneInputs.context_gated``.
    * Classifier-free guidance dropout while training: each adapter's samples are dropped independently with its
      ``drop_prob``, and all adapters together with ``drop_all_prob``. ``drop="all"`` or a list of adapter names
      forces conditions off (sampling-time CFG), in training and evaluation alike. ``guidance_dropout=False``
      keeps every condition in training whatever the drop probabilities say: for a model sampled without guidance
      (``guidance_scale`` 1), whose dropped samples would teach it nothing it uses.
    * Adapters with ``trainable=False`` are frozen (no gradients, kept in eval mode).

    An adapter given as None is left out, so that a config override ``model.conditioning.adapters.<name>: null``
    switches a condition off. Raises at construction on a collision (two adapters reading the same batch key into
    the same output kind, e.g. the person given twice), in :meth:`check_backbone` on an adapter whose kinds the
    backbone does not accept, and at call time on a missing batch key, naming the adapter and the key.
    """

    def __init__(
        self,
        adapters: dict[str, ConditioningAdapter | None],
        drop_all_prob: float = 0.0,
        guidance_dropout: bool = True,
    ) -> None:
        super().__init__()
        # an adapter set to None is switched off: an ablation is the one-line override `adapters.<name>: null`
        adapters = {name: a for name, a in adapters.items() if a is not None}
        if not 0.0 <= drop_all_prob <= 1.0:
            raise ValueError(f"drop_all_prob must lie in [0, 1], got {drop_all_prob}")
        for name, adapter in adapters.items():
            if not isinstance(adapter, ConditioningAdapter):
                raise TypeError(
                    f"conditioning adapter '{name}' must be a ConditioningAdapter, got {type(adapter).__name__}"
                )
            if name == "all" or not name.isidentifier():
                raise ValueError(f"conditioning adapter name {name!r} must be an identifier other than 'all'")
        if not any(a.output_kind == "context" for a in adapters.values()):
            raise ValueError(
                f"the conditioning stack needs at least one 'context' adapter (e.g. GlobalCaptionAdapter) for the "
                f"cross-attention; got adapters {[f'{n} ({a.output_kind})' for n, a in adapters.items()]}"
            )
        _check_collisions(adapters)
        kinds = {a.output_kind for a in adapters.values()}
        if "vace_reference" in kinds and "vace" not in kinds:
            raise ValueError(
                "a 'vace_reference' adapter (GarmentAdapter(mode='wan')) puts its frames in front of the VACE context, "
                "which needs a 'vace' adapter (e.g. PersonAdapter(mode='vace')); none is configured"
            )
        self.adapters = nn.ModuleDict(adapters)
        self.drop_all_prob = float(drop_all_prob)
        self.guidance_dropout = bool(guidance_dropout)
        for adapter in self.adapters.values():
            adapter.bind(dict(self.adapters.items()))
        for adapter in self.adapters.values():
            if not adapter.trainable:
                adapter.requires_grad_(False).eval()

    # ------------------------------------------------------------------------------------------------
    # declared interface

    @property
    def required_keys(self) -> set[str]:
        return {key for a in self.adapters.values() for key in a.input_keys}

    @property
    def extra_in_channels(self) -> int:
        return sum(a.out_channels for a in self.adapters.values() if a.output_kind == "channels")

    @property
    def vace_in_channels(self) -> int:
        """Channels of the VACE context (the backbone's ``vace_in_channels``); 0 without a VACE adapter."""
        return sum(a.out_channels for a in self.adapters.values() if a.output_kind == "vace")

    @property
    def backbone_kinds(self) -> dict[str, frozenset[str]]:
        """Per adapter name, the kinds of backbone input its outputs need."""
        return {name: a.backbone_kinds for name, a in self.adapters.items()}

    def check_backbone(self, backbone: Backbone) -> None:
        """Raise, naming the adapter and the backbone, when an adapter needs a kind the backbone does not accept."""
        for name, kinds in self.backbone_kinds.items():
            missing = sorted(kinds - backbone.accepts)
            if missing:
                adapter = self.adapters[name]
                raise ValueError(
                    f"conditioning adapter '{name}' ({type(adapter).__name__}) gives {missing} inputs, which the "
                    f"backbone {type(backbone).__name__} does not accept (it accepts {sorted(backbone.accepts)}); "
                    f"switch the adapter off (model.conditioning.adapters.{name}: null), change its mode, or use a "
                    "backbone that accepts them"
                )

    def train(self, mode: bool = True) -> ConditioningStack:
        super().train(mode)
        for adapter in self.adapters.values():
            if not adapter.trainable:
                adapter.eval()
        return self

    # ------------------------------------------------------------------------------------------------
    # forward

    def forward(
        self,
        batch: Mapping[str, Any],
        *,
        vae: nn.Module,
        latent_shape: tuple[int, int, int, int, int],
        drop: str | Iterable[str] | None = None,
        keep: Mapping[str, torch.Tensor] | None = None,
    ) -> Conditions:
        """``keep`` (adapter name -> ``(B,)`` bool) drops conditions per sample on top of ``drop``: guidance
        variants stacked in one batch (:mod:`itryon.inference.guidance`)."""
        latent_shape = tuple(int(s) for s in latent_shape)
        if len(latent_shape) != 5:
            raise ValueError(f"latent_shape must be (B, C, F, h, w), got {latent_shape}")
        env = ConditionEnv(vae=vae, latent_shape=latent_shape)
        keeps = self.keep_flags(latent_shape[0], drop, device=_batch_device(batch))
        for name, flags in (keep or {}).items():
            if name not in keeps:
                raise KeyError(f"keep names unknown adapter {name!r}; valid: {sorted(self.adapters)}")
            if tuple(flags.shape) != (latent_shape[0],):
                raise ValueError(f"keep[{name!r}] must be ({latent_shape[0]},) bool, got {tuple(flags.shape)}")
            keeps[name] = keeps[name] & flags.to(device=keeps[name].device, dtype=torch.bool)
        outputs: dict[str, AdapterOutput] = {}
        for name, adapter in self.adapters.items():
            for key in adapter.input_keys:
                if key not in batch:
                    raise KeyError(
                        f"conditioning adapter '{name}' ({type(adapter).__name__}) needs batch key '{key}', which the "
                        f"batch lacks; the batch has {sorted(batch.keys())}"
                    )
            with torch.set_grad_enabled(torch.is_grad_enabled() and adapter.trainable):
                out = adapter(batch, env, keeps[name])
            if out.kind != adapter.output_kind:
                raise RuntimeError(f"adapter '{name}' declared kind {adapter.output_kind!r} but returned {out.kind!r}")
            outputs[name] = out
        return self._route(outputs, latent_shape)

    def keep_flags(
        self, batch_size: int, drop: str | Iterable[str] | None, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Per adapter ``(B,)`` bool: which samples keep the condition (CFG dropout and forced drops)."""
        forced = self._forced(drop)
        keeps: dict[str, torch.Tensor] = {}
        drop_all = torch.zeros(batch_size, dtype=torch.bool, device=device)
        dropout = self.training and self.guidance_dropout
        if dropout and self.drop_all_prob > 0:
            drop_all = torch.rand(batch_size, device=device) < self.drop_all_prob
        for name, adapter in self.adapters.items():
            keep = ~drop_all
            if dropout and adapter.drop_prob > 0:
                keep = keep & (torch.rand(batch_size, device=device) >= adapter.drop_prob)
            if name in forced:
                keep = torch.zeros_like(keep)
            keeps[name] = keep
        return keeps

    def _forced(self, drop: str | Iterable[str] | None) -> set[str]:
        if drop is None:
            return set()
        if isinstance(drop, str):
            names = set(self.adapters) if drop == "all" else {drop}
        else:
            names = set(drop)
        unknown = sorted(names - set(self.adapters))
        if unknown:
            raise KeyError(f"drop names unknown adapter(s) {unknown}; valid: 'all' or any of {sorted(self.adapters)}")
        return names

    def _route(self, outputs: dict[str, AdapterOutput], latent_shape: tuple[int, ...]) -> Conditions:
        b, c, f, h, w = latent_shape
        by_kind: dict[str, list[tuple[str, AdapterOutput]]] = {}
        for name, out in outputs.items():
            if out.kind in LATENT_KINDS:
                expected = (b, None, None if out.kind in ("reference", "vace_reference") else f, h, w)
                if out.value.ndim != 5 or any(e is not None and e != s for e, s in zip(expected, out.value.shape)):
                    raise ValueError(
                        f"adapter '{name}' ({out.kind}) returned shape {tuple(out.value.shape)}; expected "
                        f"(B, C, {'R' if out.kind in ('reference', 'vace_reference') else f}, {h}, {w}) for latents {latent_shape}"
                    )
            by_kind.setdefault(out.kind, []).append((name, out))

        def cat(kind: str, dim: int) -> torch.Tensor | None:
            parts = by_kind.get(kind)
            return torch.cat([o.value for _, o in parts], dim=dim) if parts else None

        # 1. latent-grid conditions
        estimates = [(name, o.estimate) for name, o in outputs.items() if o.estimate is not None]
        if len(estimates) > 1:
            raise ValueError(f"adapters {[n for n, _ in estimates]} all give a clean-latent estimate; at most one may")
        estimate = estimates[0][1] if estimates else None
        if estimate is not None and tuple(estimate.shape) != (b, c, f, h, w):
            raise ValueError(
                f"adapter '{estimates[0][0]}' gave an estimate of shape {tuple(estimate.shape)}; expected the latent "
                f"shape {latent_shape}"
            )
        channels = cat("channels", 1)
        vace = cat("vace", 1)
        reference = cat("reference", 2)
        vace_reference = cat("vace_reference", 2)
        if reference is not None and self.extra_in_channels:
            # reference frames carry no channel conditions: zeros in the concatenated channels
            reference = F.pad(reference, (0, 0, 0, 0, 0, 0, 0, self.extra_in_channels))

        # 2. token-sequence conditions
        residual = None
        for _, out in by_kind.get("residual", []):
            residual = out.value if residual is None else residual + out.value
        tokens = cat("tokens", 1)
        token_positions = None
        if tokens is not None:
            token_positions = torch.cat([o.positions for _, o in by_kind["tokens"]], dim=0)

        # 3. cross-attention context: positions NaN and mask True where an adapter gives none
        parts = by_kind["context"]
        context = torch.cat([o.value for _, o in parts], dim=1)  # (B, L, D)
        positions = mask = None
        if any(o.positions is not None for _, o in parts):
            positions = torch.cat(
                [o.positions if o.positions is not None else _nan(o.value) for _, o in parts], dim=1
            )  # (B, L)
        if any(o.mask is not None for _, o in parts):
            mask = torch.cat(
                [
                    o.mask
                    if o.mask is not None
                    else torch.ones(b, f, o.value.shape[1], dtype=torch.bool, device=o.value.device)
                    for _, o in parts
                ],
                dim=2,
            )  # (B, F, L)
        gated = None
        if any(self.adapters[name].gated for name, _ in parts):
            gated = torch.cat(
                [
                    torch.full(
                        (b, o.value.shape[1]), self.adapters[name].gated, dtype=torch.bool, device=o.value.device
                    )
                    for name, o in parts
                ],
                dim=1,
            )  # (B, L)
        inputs = BackboneInputs(
            context=context,
            context_positions=positions,
            context_mask=mask,
            context_gated=gated,
            channels=channels,
            vace_context=vace,
            reference_latents=reference,
            vace_reference=vace_reference,
            token_residual=residual,
            extra_tokens=tokens,
            extra_token_positions=token_positions,
        )
        return Conditions(inputs, estimate)


def _nan(value: torch.Tensor) -> torch.Tensor:
    return torch.full(value.shape[:2], float("nan"), dtype=torch.float32, device=value.device)


def _batch_device(batch: Mapping[str, Any]) -> torch.device:
    for value in batch.values():
        if torch.is_tensor(value):
            return value.device
    return torch.device("cpu")


def _check_collisions(adapters: Mapping[str, ConditioningAdapter]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for name, adapter in adapters.items():
        for key in adapter.input_keys:
            slot = (key, adapter.output_kind)
            if slot in seen:
                raise ValueError(
                    f"conditioning adapters '{seen[slot]}' and '{name}' both turn batch key '{key}' into "
                    f"'{adapter.output_kind}' outputs (the same condition twice); remove or rename one of them"
                )
            seen[slot] = name
