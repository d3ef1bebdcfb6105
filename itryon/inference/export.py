"""A run as an :class:`~itryon.inference.pipeline.ITryOnPipeline`: its parts' config entries and trained weights.

:func:`pipeline_from_run` builds the pipeline in memory (``itryon infer`` and ``itryon demo`` run it);
``pipeline_from_run(...).save_pretrained(DIR)`` is ``itryon export``. Each component is rebuilt from the run's
config entry and takes the module's weights with a strict load, so an entry that does not describe the trained
part exactly fails here, naming the component.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import nn

from itryon.config import import_target
from itryon.inference.components import (
    TEXT_ENCODER_SEAT,
    ITryOnConditioning,
    ITryOnTextEncoder,
    ITryOnTransformer,
    ITryOnVAE,
    key_orders,
)
from itryon.inference.pipeline import ITryOnPipeline, scheduler_for


def pipeline_from_run(run_dir: str | Path, weights: str | Path | None = None) -> ITryOnPipeline:
    """The pipeline of a run folder (its ``config.yaml`` and weights, default ``weights/model.safetensors``)."""
    from itryon.training.run import load_run_config, load_run_module

    run_dir = Path(run_dir)
    module = load_run_module(run_dir, Path(weights) if weights else None)
    cfg = load_run_config(run_dir, ["model.init_from=null"])
    return pipeline_from_module(module, cfg.model)


def pipeline_from_module(module: Any, model_cfg: DictConfig) -> ITryOnPipeline:
    """The pipeline of a :class:`~itryon.training.TryOnModule` built from the config entry ``model_cfg``."""
    stack_cfg = _container(model_cfg.conditioning)
    text_adapter, text_cfg = _text_encoder_entry(stack_cfg)
    transformer = _component(ITryOnTransformer, _backbone_entry(model_cfg, module), module.backbone)
    vae = _component(ITryOnVAE, _container(model_cfg.vae), module.vae)
    text_encoder = None
    skip = ()
    if text_adapter is not None:
        owner = module.conditioning.adapters[text_adapter]
        text_encoder = _component(ITryOnTextEncoder, text_cfg, owner.encoder)
        skip = (f"adapters.{text_adapter}.encoder.",)
    conditioning = _component(ITryOnConditioning, stack_cfg, module.conditioning, skip=skip)
    sampler = module.sampler
    return ITryOnPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=scheduler_for(sampler),
        conditioning=conditioning,
        text_encoder=text_encoder,
        tokenizer=None,
        text_adapter=text_adapter,
        prediction=module.prediction,
        residual=bool(module.residual),
        min_sample_t=float(module.min_sample_t),
        num_train_timesteps=int(module.flow.num_train_timesteps),
        num_inference_steps=int(sampler.num_steps),
        guidance_scale=float(sampler.guidance_scale),
        guidance_drop=module.guidance_drop,
        paste_back=bool(module.paste_back),
    )


def _container(node: Any) -> dict[str, Any]:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def _backbone_entry(model_cfg: DictConfig, module: Any) -> dict[str, Any]:
    """The backbone entry with the channel counts the module derived (a ``_partial_`` entry completed)."""
    from itryon.training.wiring import derived_channels

    entry = _container(model_cfg.backbone)
    if entry.pop("_partial_", False):
        params = inspect.signature(import_target(entry["_target_"], key="model.backbone._target_")).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for key, value in derived_channels(module.conditioning, module.vae).items():
            if key not in entry and (takes_any or key in params):
                entry[key] = value
    return entry


def _text_encoder_entry(stack_cfg: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """The adapter that owns the text encoder and the encoder's entry, replaced in ``stack_cfg`` by a placeholder."""
    owners = [
        name
        for name, entry in (stack_cfg.get("adapters") or {}).items()
        if isinstance(entry, dict) and isinstance(entry.get("encoder"), dict) and "_target_" in entry["encoder"]
    ]
    if not owners:
        return None, None
    if len(owners) > 1:
        raise ValueError(
            f"adapters {owners} each own a text encoder; a pipeline has one text_encoder (share it with encoder_from)"
        )
    name = owners[0]
    encoder = stack_cfg["adapters"][name]["encoder"]
    stack_cfg["adapters"][name]["encoder"] = dict(TEXT_ENCODER_SEAT)
    return name, encoder


def _component(cls: type, entry: dict[str, Any], trained: nn.Module, skip: tuple[str, ...] = ()) -> Any:
    """``cls(entry)`` holding ``trained``'s weights (strict: every tensor on both sides, same shapes)."""
    component = cls(target=entry, key_order=key_orders(entry))
    state = {k: v for k, v in trained.state_dict().items() if not k.startswith(skip)}
    result = component.module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{cls.part}: the config entry {entry.get('_target_')} does not build the trained part: missing "
            f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return component.eval()
