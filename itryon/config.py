"""Configuration: YAML composition, command-line overrides, validation and ``_target_`` instantiation.

A config file may start with a ``defaults`` list that composes pieces from the config folder::

    defaults:
      - model@model.backbone: tiny     # configs/model/tiny.yaml mounted at model.backbone
      - data: synthetic                # configs/data/synthetic.yaml mounted at data
      - /default                       # configs/default.yaml merged at the root (experiments start so)

Later entries win; the file's own keys win over its defaults. Command-line ``a.b=c`` overrides win last.
Mappings merge key by key; a mapping marked ``_replace_: true`` replaces the entry it lands on instead
(e.g. to swap a ``_target_`` whose arguments differ).
Every leaf remembers the file (or ``command line``) it came from, so that validation errors name it.

Validation (:func:`validate`) runs before anything is built: each ``_target_`` must import, every key
beside it must be a parameter of the target's constructor, and values must match the annotated types.
Errors name the dotted key, its file, and the closest valid names.

A config is data: it may only build classes (or their ``from_*`` constructors, e.g. ``WanDiT.from_pretrained``)
from the project's packages and the libraries it builds on (:data:`ALLOWED_PACKAGES`), never call a function
such as ``os.system``. ``--trust-config`` (:func:`trust_targets`) or ``ITRYON_TRUST_CONFIG=1`` lifts the rule
for a config you wrote; ``ITRYON_TARGET_PACKAGES=pkg,other`` adds your own packages under the same rule.
The check runs before a target's module is imported, and again on everything the import resolves to.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import importlib
import inspect
import os
import types
import typing
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"
RESERVED = ("_target_", "_partial_", "_replace_")
COMMAND_LINE = "command line"


class ConfigError(ValueError):
    """A configuration cannot be composed, validated or instantiated; the message names the key and file."""


# ----------------------------------------------------------------------------------------------------
# what a config may build

TRUST_ENV = "ITRYON_TRUST_CONFIG"
PACKAGES_ENV = "ITRYON_TARGET_PACKAGES"
ALLOWED_PACKAGES = (
    "itryon",
    "callbacks",
    "lightning",
    "pytorch_lightning",
    "lightning_fabric",
    "torch",
    "torchvision",
    "torchmetrics",
    "torchdata",
    "diffusers",
    "transformers",
    "peft",
    "safetensors",
    "einops",
)
# parts of allowed packages that load or run code, or run a command line, given only data
DENIED_MODULES = (
    "torch.hub",
    "torch.jit",
    "torch.package",
    "torch.library",
    "torch.classes",
    "torch.ops",
    "torch.serialization",
    "torch.export",
    "torch.distributed.rpc",
    "torch.utils.cpp_extension",
    "torch.utils.collect_env",
    "torch.utils.model_zoo",
    "lightning.pytorch.cli",
    "lightning.fabric.cli",
    "pytorch_lightning.cli",
    "lightning_fabric.cli",
    "transformers.dynamic_module_utils",
    "diffusers.utils.dynamic_modules_utils",
    "itryon.cli",
    "itryon.config",
)
DENIED_ARGUMENTS = ("trust_remote_code", "custom_pipeline")  # library switches that run code from a model folder
_TRUST: contextvars.ContextVar[bool] = contextvars.ContextVar("itryon_trust_config", default=False)


@contextlib.contextmanager
def trust_targets(enabled: bool = True) -> Iterator[None]:
    """Within the block, configs may build any ``_target_`` (``--trust-config``)."""
    token = _TRUST.set(bool(enabled) or _TRUST.get())
    try:
        yield
    finally:
        _TRUST.reset(token)


def targets_trusted() -> bool:
    return _TRUST.get() or os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def allowed_packages() -> tuple[str, ...]:
    extra = tuple(p.strip() for p in os.environ.get(PACKAGES_ENV, "").split(",") if p.strip())
    return ALLOWED_PACKAGES + extra


def _within(name: str, packages: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _refuse(name: str, key: str, where: str, why: str) -> ConfigError:
    return ConfigError(
        f"'{key}'{where}: target {name!r} is not allowed: {why}. A config may only build classes (or their from_* "
        f"constructors) from {', '.join(allowed_packages())}; if you trust this config, pass --trust-config or set "
        f"{TRUST_ENV}=1, or add your package to {PACKAGES_ENV}"
    )


def _check_name(name: str, key: str, where: str) -> None:
    """The part of the rule that needs no import: the dotted path itself."""
    parts = name.split(".")
    if any(not p.isidentifier() or p.startswith("_") for p in parts):
        raise _refuse(name, key, where, "its path has a private or invalid part")
    if not _within(name, allowed_packages()):
        raise _refuse(name, key, where, f"'{parts[0]}' is not one of the allowed packages")
    if _within(name, DENIED_MODULES):
        raise _refuse(name, key, where, "that part of the library loads or runs code")


def _check_resolved(name: str, chain: Sequence[Any], key: str, where: str) -> None:
    """Everything the dotted path resolved to stays inside the allowed packages (``torch.os`` is the ``os``
    module) and the target is a class or a ``from_*`` constructor of one."""
    packages = allowed_packages()
    for obj in chain:
        home = (
            obj.__name__
            if isinstance(obj, types.ModuleType)
            else getattr(obj, "__module__", None) or type(obj).__module__
        )
        if not _within(home, packages):
            raise _refuse(name, key, where, f"it resolves to {home!r}, outside the allowed packages")
        if _within(home, DENIED_MODULES):
            raise _refuse(name, key, where, f"it resolves to {home!r}, which loads or runs code")
    target = chain[-1]
    if isinstance(target, type):
        return
    owner = getattr(target, "__self__", None)
    if inspect.ismethod(target) and isinstance(owner, type) and target.__name__.startswith("from_"):
        return
    raise _refuse(name, key, where, "it is not a class or a from_* constructor of one")


# ----------------------------------------------------------------------------------------------------
# composition


def load_config(path: str | Path, overrides: Sequence[str] = (), config_root: str | Path | None = None) -> DictConfig:
    """Compose ``path`` with its defaults, apply dot-list ``overrides`` and resolve interpolations.

    The returned config carries the origin of each leaf in ``cfg._origins`` (see :func:`origin_of`).
    """
    root = Path(config_root) if config_root is not None else _guess_root(Path(path))
    origins: dict[str, str] = {}
    cfg = _compose(Path(path), root, origins, stack=())
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. trainer.max_steps=10)")
        key, value = item.split("=", 1)
        key = key.strip().lstrip("+")
        if not key:
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            OmegaConf.update(cfg, key, _parse_value(value, item), merge=True, force_add=True)
        except ConfigError:
            raise
        except Exception as exc:  # omegaconf refuses e.g. a key path through a list or a non-mapping
            raise ConfigError(f"override {item!r} (command line) cannot be applied: {_one_line(exc)}") from None
        _record(origins, key, OmegaConf.select(cfg, key, throw_on_resolution_failure=False), COMMAND_LINE)
    try:
        OmegaConf.resolve(cfg)
    except RecursionError:
        raise ConfigError(
            f"cannot resolve the interpolations of {path}: a value refers to itself (e.g. model=${{model}})"
        ) from None
    except Exception as exc:  # omegaconf raises several unrelated types for a bad interpolation
        key = getattr(exc, "full_key", None) or "?"
        where = origins.get(str(key)) or origin_of_key(origins, str(key)) or str(path)
        raise ConfigError(f"cannot resolve '{key}' (set in {where}): {_one_line(exc)}") from None
    _ORIGINS[id(cfg)] = origins
    weakref.finalize(cfg, _ORIGINS.pop, id(cfg), None)  # forget the origins with the config
    return cfg


_ORIGINS: dict[int, dict[str, str]] = {}  # id(config) -> {dotted key: file}; configs cannot carry attributes


def origin_of(cfg: DictConfig, key: str) -> str | None:
    """The file (or ``command line``) that set dotted ``key`` last, or its closest parent's origin."""
    origins = _ORIGINS.get(id(cfg), {})
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


def origin_of_key(origins: Mapping[str, str], key: str) -> str | None:
    while key:
        if key in origins:
            return origins[key]
        key = key.rpartition(".")[0]
    return None


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
        piece = _compose(target_path, root, origins, (*stack, path), _join(package, mount))
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


def _join(a: str, b: str) -> str:
    return ".".join(x for x in (a, b) if x)


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
                found += _replaced_keys(child, _join(prefix, str(k)))
    return found


def _record(origins: dict[str, str], prefix: str, node: Any, source: str) -> None:
    if prefix:
        origins[prefix] = source
    if isinstance(node, (DictConfig, Mapping)):
        for k in node.keys():
            _record(
                origins,
                _join(prefix, str(k)),
                node[k] if not isinstance(node, DictConfig) else node._get_node(k),
                source,
            )
    elif isinstance(node, (ListConfig, list)):
        for i, _ in enumerate(node):
            origins[_join(prefix, str(i))] = source


# ----------------------------------------------------------------------------------------------------
# validation


def validate(cfg: DictConfig, schema: Mapping[str, Any] | None = None, path: str = "") -> None:
    """Check every ``_target_`` node of ``cfg`` (imports, keys, types) and, with ``schema``, the plain keys.

    ``schema`` maps allowed keys of a plain (target-free) mapping to a type, a nested schema, or a callable
    whose signature lists the allowed keys (e.g. ``lightning.Trainer``).
    """
    _validate_node(cfg, cfg, schema, path)


def _validate_node(root: DictConfig, node: Any, schema: Any, path: str) -> None:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            _validate_target(root, node, path)
            return
        if schema is not None:
            allowed = _allowed_keys(schema)
            if allowed is not None:
                for key in node.keys():
                    if key not in allowed:
                        _unknown_key(root, _join(path, str(key)), str(key), allowed, what=f"'{path or '<root>'}'")
            if callable(schema) and not isinstance(schema, type):
                _check_types(root, node, inspect.signature(schema).parameters, path)
        for key in node.keys():
            sub = schema.get(key) if isinstance(schema, Mapping) else None
            _validate_node(root, node[key], sub, _join(path, str(key)))
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            _validate_node(root, item, None, _join(path, str(i)))


def _allowed_keys(schema: Any) -> list[str] | None:
    if isinstance(schema, Mapping):
        return list(schema.keys())
    if callable(schema):
        params = inspect.signature(schema).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return None
        return [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL,) and n != "self"]
    return None


def _validate_target(root: DictConfig, node: DictConfig, path: str) -> None:
    key, origin = _join(path, "_target_"), origin_of(root, _join(path, "_target_"))
    target = import_target(node["_target_"], key=key, origin=origin)
    _check_arguments(node["_target_"], node, key, f" (set in {origin})" if origin else "")
    params = _init_parameters(target)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    allowed = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not takes_any:
        for key in node.keys():
            if key in RESERVED:
                continue
            if key not in allowed:
                _unknown_key(root, _join(path, str(key)), str(key), allowed, what=f"{node['_target_']}")
    required = [n for n in allowed if params[n].default is inspect.Parameter.empty and n not in node]
    if required and not node.get("_partial_", False):
        raise ConfigError(
            f"'{path or '<root>'}' ({node['_target_']}) lacks required argument(s) {required}" + _from(root, path)
        )
    _check_types(root, node, params, path)
    for key in node.keys():
        if key not in RESERVED:
            _validate_node(root, node[key], None, _join(path, str(key)))


def _init_parameters(target: Any) -> Mapping[str, inspect.Parameter]:
    fn = target.__init__ if isinstance(target, type) else target
    params = dict(inspect.signature(fn).parameters)
    params.pop("self", None)
    return params


def _check_types(root: DictConfig, node: DictConfig, params: Mapping[str, inspect.Parameter], path: str) -> None:
    hints = _type_hints(params)
    for key in node.keys():
        if key in RESERVED or key not in hints:
            continue
        value = node[key]
        if isinstance(value, DictConfig) and "_target_" in value:
            continue  # built object: checked when its own node is validated
        if not _matches(value, hints[key]):
            shown = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
            raise ConfigError(
                f"'{_join(path, str(key))}' expects {_type_name(hints[key])}, got {type(shown).__name__} {shown!r}"
                + _from(root, _join(path, str(key)))
            )


def _type_hints(params: Mapping[str, inspect.Parameter]) -> dict[str, Any]:
    out = {}
    for name, p in params.items():
        ann = p.annotation
        if ann is inspect.Parameter.empty:
            continue
        if isinstance(ann, str):
            try:
                ann = eval(ann, _annotation_namespace(p))  # noqa: S307 - postponed annotations of project code
            except Exception:
                continue
        out[name] = ann
    return out


def _annotation_namespace(p: inspect.Parameter) -> dict:
    import collections.abc as cabc

    import torch
    from torch import nn

    ns = {"torch": torch, "nn": nn, "Tensor": torch.Tensor, "typing": typing, "Any": Any, "Path": Path}
    ns.update(
        {n: getattr(typing, n) for n in ("Optional", "Union", "Literal", "Sequence", "Mapping", "Iterable", "Callable")}
    )
    ns.update({n: getattr(cabc, n) for n in ("Sequence", "Mapping", "Iterable", "Callable")})
    return ns


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
    if typing.get_origin(hint) is not None or isinstance(hint, types.UnionType):
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


def import_target(name: Any, key: str = "_target_", origin: str | None = None) -> Any:
    """Import a dotted path ``module.attr`` (or ``module.Class.method``, e.g. ``WanDiT.from_pretrained``);
    errors name the key and the closest attributes."""
    where = f" (set in {origin})" if origin else ""
    if not isinstance(name, str) or "." not in name:
        raise ConfigError(f"'{key}'{where} must be a dotted path like 'package.module.Class', got {name!r}")
    trusted = targets_trusted()
    if not trusted:
        _check_name(name, key, where)  # before any import: importing a module runs its code
    parts = name.split(".")
    module, error = None, None
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable module prefix
        try:
            module = importlib.import_module(".".join(parts[:cut]))
            break
        except ModuleNotFoundError as exc:
            error = error or exc
            if exc.name is not None and not ".".join(parts[:cut]).startswith(exc.name):
                raise ConfigError(f"'{key}'{where}: importing {name!r} failed ({exc})") from exc
        except ImportError as exc:
            raise ConfigError(f"'{key}'{where}: importing {name!r} failed ({exc})") from exc
    if module is None:
        raise ConfigError(f"'{key}'{where}: cannot import module '{parts[0]}' for target {name!r} ({error})")
    obj: Any = module
    chain = [module]
    for attr in parts[cut:]:
        if not hasattr(obj, attr):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(attr, names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"'{key}'{where}: '{getattr(obj, '__name__', obj)}' has no '{attr}'{hint}")
        obj = getattr(obj, attr)
        chain.append(obj)
    if not trusted:
        _check_resolved(name, chain, key, where)
    return obj


def _check_arguments(name: str, args: Mapping[str, Any], key: str, where: str) -> None:
    if targets_trusted():
        return
    for arg in DENIED_ARGUMENTS:
        if args.get(arg):
            raise _refuse(name, key, where, f"'{arg}' makes it run code shipped with the model files")


# ----------------------------------------------------------------------------------------------------
# instantiation


def instantiate(node: Any, path: str = "", **kwargs: Any) -> Any:
    """Build objects from ``_target_`` nodes, depth first; plain mappings/lists become dicts/lists.

    ``kwargs`` are extra arguments for the top node. ``_partial_: true`` returns a ``functools.partial``.
    """
    if isinstance(node, DictConfig):
        node_dict = {str(k): node[k] for k in node.keys()}
    elif isinstance(node, Mapping):
        node_dict = dict(node)
    elif isinstance(node, (ListConfig, list, tuple)):
        return [instantiate(v, _join(path, str(i))) for i, v in enumerate(node)]
    else:
        return node
    if "_target_" not in node_dict:
        return {k: instantiate(v, _join(path, k)) for k, v in node_dict.items()}
    target = import_target(node_dict["_target_"], key=_join(path, "_target_"))
    partial = bool(node_dict.get("_partial_", False))
    args = {k: instantiate(v, _join(path, k)) for k, v in node_dict.items() if k not in RESERVED}
    args.update(kwargs)
    _check_arguments(node_dict["_target_"], args, _join(path, "_target_"), "")
    if partial:
        import functools

        return functools.partial(target, **args)
    try:
        return target(**args)
    except TypeError as exc:
        raise ConfigError(f"building '{path or '<root>'}' ({node_dict['_target_']}) failed: {exc}") from exc


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
