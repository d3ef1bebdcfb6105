"""Building objects from ``_target_`` nodes, depth first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from itryon.config.common import RESERVED, ConfigError, join
from itryon.config.targets import check_arguments, import_target


def instantiate(node: Any, path: str = "", **kwargs: Any) -> Any:
    """Build objects from ``_target_`` nodes, depth first; plain mappings/lists become dicts/lists.

    ``kwargs`` are extra arguments for the top node. ``_partial_: true`` returns a ``functools.partial``.
    """
    if isinstance(node, DictConfig):
        node_dict = {str(k): node[k] for k in node.keys()}
    elif isinstance(node, Mapping):
        node_dict = dict(node)
    elif isinstance(node, (ListConfig, list, tuple)):
        return [instantiate(v, join(path, str(i))) for i, v in enumerate(node)]
    else:
        return node
    if "_target_" not in node_dict:
        return {k: instantiate(v, join(path, k)) for k, v in node_dict.items()}
    target = import_target(node_dict["_target_"], key=join(path, "_target_"))
    partial = bool(node_dict.get("_partial_", False))
    args = {k: instantiate(v, join(path, k)) for k, v in node_dict.items() if k not in RESERVED}
    args.update(kwargs)
    check_arguments(node_dict["_target_"], args, join(path, "_target_"), "")
    if partial:
        import functools

        return functools.partial(target, **args)
    try:
        return target(**args)
    except TypeError as exc:
        raise ConfigError(f"building '{path or '<root>'}' ({node_dict['_target_']}) failed: {exc}") from exc


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
