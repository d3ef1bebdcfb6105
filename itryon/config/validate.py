"""Validation before anything is built: targets import, keys exist, values have the annotated types.

A schema (for the plain, target-free part of a config) maps each allowed key to one of:

* a type hint (``int``, ``str``, ``list``, ``Literal[...]``, ``int | None``): the value must match it;
* a nested schema mapping;
* :class:`ArgumentsOf` a class (e.g. ``lightning.Trainer``): a mapping of its constructor arguments, checked like
  the keys beside a ``_target_``;
* :class:`Entries`: a list or mapping of ``_target_`` entries (null leaves one out), or names of presets;
* None: anything, with its ``_target_`` entries checked.

Annotations are read with ``inspect.signature(eval_str=True)``, in the namespace of the function that declares
them. A parameter whose annotation names something its module imports only for type checkers (``TYPE_CHECKING``)
cannot be resolved; its values are then not type-checked (its key still is).
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from itryon.config.common import RESERVED, ConfigError, join
from itryon.config.compose import origin_of
from itryon.config.targets import check_arguments, import_target


@dataclass(frozen=True)
class ArgumentsOf:
    """A schema entry: a plain mapping of ``target``'s constructor arguments. ``reserved`` maps the arguments the
    program sets itself to what to write instead."""

    target: Any
    reserved: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Entries:
    """A schema entry: a list or mapping whose items are ``_target_`` entries, null, or one of the ``presets``
    names. The program gives each entry the ``supplied`` arguments it takes (they count as given)."""

    supplied: tuple[str, ...] = ()
    presets: tuple[str, ...] = ()


def validate(cfg: DictConfig, schema: Mapping[str, Any] | None = None, path: str = "") -> None:
    """Check every ``_target_`` node of ``cfg`` (imports, keys, types) and, with ``schema``, every other key."""
    _validate_node(cfg, cfg, schema, path)


def _validate_node(root: DictConfig, node: Any, schema: Any, path: str) -> None:
    if isinstance(node, DictConfig) and "_target_" in node:
        _validate_target(root, node, path)
        return
    if isinstance(schema, ArgumentsOf):
        _validate_arguments(root, node, schema, path)
        return
    if isinstance(schema, Entries):
        _validate_entries(root, node, schema, path)
        return
    if isinstance(schema, Mapping):
        if not isinstance(node, DictConfig):
            raise ConfigError(f"'{path or '<root>'}' expects a mapping, got {_shown(node)}" + _from(root, path))
        for key in node.keys():
            if key not in schema:
                _unknown_key(root, join(path, str(key)), str(key), list(schema), what=f"'{path or '<root>'}'")
        for key in node.keys():
            _validate_node(root, node[key], schema[key], join(path, str(key)))
        return
    if schema is not None and not _matches(node, schema):
        raise ConfigError(f"'{path}' expects {_type_name(schema)}, got {_shown(node)}" + _from(root, path))
    if isinstance(node, DictConfig):
        for key in node.keys():
            _validate_node(root, node[key], None, join(path, str(key)))
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            _validate_node(root, item, None, join(path, str(i)))


def _validate_arguments(root: DictConfig, node: Any, spec: ArgumentsOf, path: str) -> None:
    name = f"{spec.target.__module__}.{spec.target.__qualname__}"
    if not isinstance(node, DictConfig):
        raise ConfigError(f"'{path}' expects a mapping of {name} arguments, got {_shown(node)}" + _from(root, path))
    for key in node.keys():
        if key in spec.reserved:
            raise ConfigError(f"'{join(path, str(key))}'{_from(root, join(path, str(key)))}: {spec.reserved[key]}")
    params = parameters(spec.target)
    _check_keys(root, node, params, path, name)
    _check_types(root, node, params, path)
    for key in node.keys():
        _validate_node(root, node[key], None, join(path, str(key)))


def _validate_entries(root: DictConfig, node: Any, spec: Entries, path: str) -> None:
    if node is None:
        return
    if not isinstance(node, (DictConfig, ListConfig)):
        raise ConfigError(
            f"'{path}' expects a list or mapping of _target_ entries, got {_shown(node)}" + _from(root, path)
        )
    items = node.items() if isinstance(node, DictConfig) else enumerate(node)
    for key, item in items:
        where = join(path, str(key))
        if item is None:
            continue
        if isinstance(item, str) and spec.presets:
            if item not in spec.presets:
                raise ConfigError(
                    f"'{where}'{_from(root, where)}: unknown entry {item!r}; name one of {sorted(spec.presets)} or write a "
                    "_target_ entry"
                )
            continue
        if not (isinstance(item, DictConfig) and "_target_" in item):
            names = f", one of {sorted(spec.presets)}" if spec.presets else ""
            raise ConfigError(
                f"'{where}'{_from(root, where)} must be a _target_ entry{names} or null, got {_shown(item)}"
            )
        _validate_target(root, item, where, spec.supplied)


def _validate_target(root: DictConfig, node: DictConfig, path: str, supplied: Sequence[str] = ()) -> None:
    key, origin = join(path, "_target_"), origin_of(root, join(path, "_target_"))
    target = import_target(node["_target_"], key=key, origin=origin)
    check_arguments(node["_target_"], node, key, f" (set in {origin})" if origin else "")
    params = parameters(target)
    allowed = _check_keys(root, node, params, path, str(node["_target_"]))
    required = [
        n for n in allowed if params[n].default is inspect.Parameter.empty and n not in node and n not in supplied
    ]
    if required and not node.get("_partial_", False):
        raise ConfigError(
            f"'{path or '<root>'}' ({node['_target_']}) lacks required argument(s) {required}" + _from(root, path)
        )
    _check_types(root, node, params, path)
    for key in node.keys():
        if key not in RESERVED:
            _validate_node(root, node[key], None, join(path, str(key)))


def _check_keys(
    root: DictConfig, node: DictConfig, params: Mapping[str, inspect.Parameter], path: str, what: str
) -> list[str]:
    """The keyword arguments ``params`` take; raises on a key of ``node`` that is none of them."""
    allowed = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return allowed
    for key in node.keys():
        if key not in RESERVED and key not in allowed:
            _unknown_key(root, join(path, str(key)), str(key), allowed, what=what)
    return allowed


def parameters(target: Any) -> dict[str, inspect.Parameter]:
    """The constructor (or ``from_*`` method) parameters of ``target``, annotations resolved where they can be."""
    fn = target.__init__ if isinstance(target, type) else target
    try:
        params = dict(inspect.signature(fn, eval_str=True).parameters)
    except NameError:  # one annotation names a type-checking-only import: resolve the others one by one
        namespace = getattr(inspect.unwrap(fn), "__globals__", {})
        params = {
            n: p.replace(annotation=_resolve(p.annotation, namespace))
            for n, p in inspect.signature(fn).parameters.items()
        }
    params.pop("self", None)
    return params


def _resolve(annotation: Any, namespace: Mapping[str, Any]) -> Any:
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, dict(namespace))  # noqa: S307 - what inspect.signature(eval_str=True) does, per name
    except NameError:
        return inspect.Parameter.empty


def _check_types(root: DictConfig, node: DictConfig, params: Mapping[str, inspect.Parameter], path: str) -> None:
    for key in node.keys():
        if key in RESERVED or key not in params:
            continue
        hint, value = params[key].annotation, node[key]
        if isinstance(value, DictConfig) and "_target_" in value:
            continue  # built object: checked when its own node is validated
        if not _matches(value, hint):
            raise ConfigError(
                f"'{join(path, str(key))}' expects {_type_name(hint)}, got {_shown(value)}"
                + _from(root, join(path, str(key)))
            )


def _shown(value: Any) -> str:
    shown = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
    return f"{type(shown).__name__} {shown!r}"


def _matches(value: Any, hint: Any) -> bool:
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if value is None:
        return False
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is Path:
        return isinstance(value, str)
    if getattr(hint, "__module__", None) == "torch" and getattr(hint, "__name__", None) == "dtype":
        return False  # a config holds dtype names (a Literal beside it in the annotation), never a torch.dtype
    container = origin or hint
    if container in (list, tuple, Sequence, typing.Sequence) or container is getattr(typing, "Sequence", None):
        if not isinstance(value, (ListConfig, list, tuple)):
            return False
        if args and args[-1] is not Ellipsis and container is not tuple:
            return all(_matches(v, args[0]) for v in value)
        return True
    if container in (dict, Mapping):
        return isinstance(value, (DictConfig, dict))
    return True  # classes, callables, modules: built from nested _target_ nodes or checked by the target


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if hint is type(None):
        return "None"
    if origin is not None:
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", None) or str(hint)


def _from(root: DictConfig, key: str) -> str:
    where = origin_of(root, key)
    return f" (set in {where})" if where else ""


def _unknown_key(root: DictConfig, full_key: str, key: str, allowed: Sequence[str], what: str) -> None:
    close = difflib.get_close_matches(key, list(allowed), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise ConfigError(
        f"unknown key '{full_key}'{_from(root, full_key)}: {what} takes no '{key}'; {hint}"
        f"valid keys: {', '.join(sorted(allowed))}"
    )
