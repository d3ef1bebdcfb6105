"""Where the module's parts meet: the backbone is built with the channel counts that the VAE and the conditioning
imply, never copied by hand into a config."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from itryon.models.backbone import DERIVED_ARGUMENTS, Backbone


def derived_channels(conditioning: nn.Module, vae: nn.Module) -> dict[str, int]:
    """``in_channels`` (latent + ``channels`` conditions), ``out_channels`` (latent) and, with a VACE adapter,
    ``vace_in_channels``."""
    latent = int(vae.latent_channels)
    channels = {"in_channels": latent + int(getattr(conditioning, "extra_in_channels", 0)), "out_channels": latent}
    vace = int(getattr(conditioning, "vace_in_channels", 0))
    if vace:
        channels["vace_in_channels"] = vace
    return channels


def build_backbone(backbone: Backbone | Callable[..., Backbone], conditioning: nn.Module, vae: nn.Module) -> Backbone:
    """``backbone`` itself, or built from a factory (a ``_partial_`` config) with :func:`derived_channels`.

    A factory must not set ``in_channels`` or ``vace_in_channels`` itself; it may state ``out_channels`` (configs
    interpolate it), which must then be the VAE's latent channels.
    """
    derived = derived_channels(conditioning, vae)
    if not isinstance(backbone, nn.Module):
        given = dict(getattr(backbone, "keywords", None) or {})
        restated = [k for k in DERIVED_ARGUMENTS if k in given]
        if restated:
            raise ValueError(
                f"model.backbone sets {', '.join(f'{k}={given[k]}' for k in restated)}, which follow from the VAE and "
                f"the conditioning ({', '.join(f'{k}={derived[k]}' for k in restated if k in derived)}); remove them "
                "from the backbone config"
            )
        backbone = backbone(**_taken(backbone, {k: v for k, v in derived.items() if k not in given}))
    _check_channels(backbone, derived)
    return backbone


def _taken(factory: Callable[..., Any], arguments: dict[str, int]) -> dict[str, int]:
    """The ``arguments`` that ``factory`` takes (all of them when it takes ``**kwargs``)."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return arguments
    return {k: v for k, v in arguments.items() if k in params}


def _check_channels(backbone: Backbone, derived: dict[str, int]) -> None:
    for key in ("in_channels", "out_channels"):
        got = int(getattr(backbone, key))
        if got != derived[key]:
            raise ValueError(
                f"model.backbone.{key} is {got}, but the VAE and the conditioning make it {derived[key]} ("
                f"{derived['out_channels']} latent channels + {derived['in_channels'] - derived['out_channels']} "
                "concatenated by the conditioning for in_channels); give the backbone as a _partial_ entry so that "
                f"the module derives it, or set model.backbone.{key}={derived[key]}"
            )
