"""What a config may build: classes (or their ``from_*`` constructors) of allowed packages, resolved by
:func:`import_target`.

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
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from itryon.config.common import ConfigError

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


def check_arguments(name: str, args: Mapping[str, Any], key: str, where: str) -> None:
    if targets_trusted():
        return
    for arg in DENIED_ARGUMENTS:
        if args.get(arg):
            raise _refuse(name, key, where, f"'{arg}' makes it run code shipped with the model files")
