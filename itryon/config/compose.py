"""Composition: YAML files with ``defaults`` lists, command-line overrides, and the file each leaf came from.

A config file may start with a ``defaults`` list that composes pieces from the config folder::

    defaults:
      - model@model.backbone: tiny     # configs/model/tiny.yaml mounted at model.backbone
      - data: synthetic                # configs/data/synthetic.yaml mounted at data
      - /default                       # configs/default.yaml merged at the root (experiments start so)

Later entries win; the file's own keys win over its defaults. Command-line ``a.b=c`` overrides win last.
Mappings merge key by key; a mapping marked ``_replace_: true`` replaces the entry it lands on instead
(e.g. to swap a ``_target_`` whose arguments differ).
Every leaf remembers the file (or ``command line``) it came from, so that validation errors name it.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from itryon.config.common import COMMAND_LINE, CONFIG_ROOT, ConfigError, join


def load_config(path: str | Path, overrides: Sequence[str] = (), config_root: str | Path | None = None) -> DictConfig:
    """Compose ``path`` with its defaults, apply dot-list ``overrides`` and resolve interpolations.

    The returned config remembers the origin of each leaf (see :func:`origin_of`).
    """
    root = Path(config_root) if config_root is not None else _guess_root(Path(path))
    origins: dict[str, str] = {}
    cfg = _compose(Path(path), root, origins, stack=())
    for item in overrides:
        _apply_override(cfg, item, origins, root)
    try:
        OmegaConf.resolve(cfg)
    except RecursionError:
        raise ConfigError(
            f"cannot resolve the interpolations of {path}: a value refers to itself (e.g. model=${{model}})"
        ) from None
    except Exception as exc:  # omegaconf raises several unrelated types for a bad interpolation
        key = getattr(exc, "full_key", None) or "?"
        where = _nearest_origin(origins, str(key)) or str(path)
        raise ConfigError(f"cannot resolve '{key}' (set in {where}): {_one_line(exc)}") from None
    _ORIGINS[id(cfg)] = origins
    weakref.finalize(cfg, _ORIGINS.pop, id(cfg), None)  # forget the origins with the config
    return cfg


def _apply_override(cfg: DictConfig, item: str, origins: dict[str, str], root: Path) -> None:
    """``key=value`` (``+key=value`` adds a key); the composition syntax of ``defaults`` lists is refused with what
    to write instead."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value (e.g. trainer.max_steps=10)")
    key, value = item.split("=", 1)
    key = key.strip().lstrip("+")
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    if "@" in key:
        group, _, mount = key.partition("@")
        raise ConfigError(
            f"override {item!r}: 'group@key=name' selects a config file only in a defaults list; write an experiment "
            f"file that starts with 'defaults: [/default, {{{group}@{mount}: {value}}}]' and pass it with --config, or "
            f"set single keys ({mount}.<key>=...)"
        )
    parsed = _parse_value(value, item)
    current = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
    interpolation = isinstance(parsed, str) and "${" in parsed  # may resolve to a mapping
    if isinstance(current, DictConfig) and parsed is not None and not isinstance(parsed, dict) and not interpolation:
        groups = sorted(p.parent.name for p in root.glob(f"*/{value.strip()}.yaml")) if value.strip() else []
        choose = "".join(
            f"; to use {root.name}/{g}/{value.strip()}.yaml there, write an experiment file whose defaults select it "
            f"('- {g if g == key else f'{g}@{key}'}: {value.strip()}') and pass it with --config"
            for g in groups[:1]
        )
        raise ConfigError(
            f"override {item!r} would replace the mapping '{key}' by {type(parsed).__name__} {parsed!r}{choose}; to "
            f"change one of its entries, set {key}.<key>=... (its keys: {', '.join(map(str, current.keys()))})"
        )
    try:
        OmegaConf.update(cfg, key, parsed, merge=True, force_add=True)
    except Exception as exc:  # omegaconf refuses e.g. a key path through a list or a non-mapping
        raise ConfigError(f"override {item!r} (command line) cannot be applied: {_one_line(exc)}") from None
    _record(origins, key, OmegaConf.select(cfg, key, throw_on_resolution_failure=False), COMMAND_LINE)


_ORIGINS: dict[int, dict[str, str]] = {}  # id(config) -> {dotted key: file}; configs cannot carry attributes


def origin_of(cfg: DictConfig, key: str) -> str | None:
    """The file (or ``command line``) that set dotted ``key`` last, or its closest parent's origin."""
    return _nearest_origin(_ORIGINS.get(id(cfg), {}), key)


def _nearest_origin(origins: Mapping[str, str], key: str) -> str | None:
    while key:
        if key in origins:
            return origins[key]
        key = key.rpartition(".")[0]
    return None


def _guess_root(path: Path) -> Path:
    for parent in path.resolve().parents:
        if parent.name == "configs":
            return parent
    return CONFIG_ROOT


def _one_line(exc: BaseException) -> str:
    """The first line of an omegaconf/yaml message (the rest repeats the key and the object type)."""
    text = " ".join(str(exc).strip().splitlines()[:1]) or type(exc).__name__
    return text


def _parse_value(text: str, item: str = "") -> Any:
    """The YAML value of an override; interpolations (``${...}``) stay unresolved until the whole config is."""
    try:
        node = OmegaConf.create(f"v: {text}") if text.strip() else OmegaConf.create({"v": ""})
    except Exception as exc:  # yaml scanner/parser errors
        raise ConfigError(
            f"override {item or text!r} (command line): not a valid YAML value or interpolation ({_one_line(exc)})"
        ) from None
    return OmegaConf.to_container(node, resolve=False)["v"]


def _read_yaml(path: Path) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # yaml and omegaconf parse errors
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path}: expected a mapping at the top level, got a list")
    return cfg


def _compose(path: Path, root: Path, origins: dict[str, str], stack: tuple[Path, ...], package: str = "") -> DictConfig:
    path = path.resolve()
    if path in stack:
        raise ConfigError(f"{path}: defaults form a cycle: {' -> '.join(map(str, (*stack, path)))}")
    raw = _read_yaml(path)
    defaults = raw.pop("defaults", None) if "defaults" in raw else None
    out = OmegaConf.create({})
    for entry in defaults or []:
        target_path, mount = _default_entry(entry, path, root)
        piece = _compose(target_path, root, origins, (*stack, path), join(package, mount))
        out = _merge_at(out, piece, mount)
    _record(origins, package, raw, str(path))
    return _merge_at(out, raw, "")


def _default_entry(entry: Any, path: Path, root: Path) -> tuple[Path, str]:
    if isinstance(entry, str):
        name = entry.lstrip("/")
        base = root if entry.startswith("/") else path.parent
        return _yaml_path(base / name), ""
    if isinstance(entry, (Mapping, DictConfig)) and len(entry) == 1:
        ((group, name),) = entry.items()
        group, _, mount = str(group).partition("@")
        return _yaml_path(root / group / str(name)), mount or group
    raise ConfigError(f"{path}: a defaults entry must be 'group: name', 'group@key: name' or '/path', got {entry!r}")


def _yaml_path(p: Path) -> Path:
    return p if p.suffix in (".yaml", ".yml") else p.with_name(p.name + ".yaml")


def _merge_at(base: DictConfig, piece: DictConfig, mount: str) -> DictConfig:
    if mount:
        wrapped: Any = piece
        for part in reversed(mount.split(".")):
            wrapped = {part: wrapped}
        piece = OmegaConf.create(wrapped)
    for key in _replaced_keys(piece, ""):
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(base, parent) if parent else base
        if isinstance(node, DictConfig) and leaf in node:
            del node[leaf]  # `_replace_: true` swaps the whole entry instead of merging into it
    return OmegaConf.merge(base, piece)


def _replaced_keys(node: Any, prefix: str) -> list[str]:
    """Dotted keys of mappings marked ``_replace_: true`` (the marker is removed)."""
    found = []
    if isinstance(node, DictConfig):
        if node.get("_replace_", False) is True and prefix:
            found.append(prefix)
            del node["_replace_"]
        for k in list(node.keys()):
            child = node._get_node(k)
            if isinstance(child, DictConfig):
                found += _replaced_keys(child, join(prefix, str(k)))
    return found


def _record(origins: dict[str, str], prefix: str, node: Any, source: str) -> None:
    if prefix:
        origins[prefix] = source
    if isinstance(node, (DictConfig, Mapping)):
        for k in node.keys():
            _record(
                origins,
                join(prefix, str(k)),
                node[k] if not isinstance(node, DictConfig) else node._get_node(k),
                source,
            )
    elif isinstance(node, (ListConfig, list)):
        for i, _ in enumerate(node):
            origins[join(prefix, str(i))] = source
