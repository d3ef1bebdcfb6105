"""Which parameters train, which frozen tensors stay out of checkpoints and exports, and a summary of both.

A frozen tensor that was loaded from a file (a VAE, a text encoder or a backbone loaded from a local folder: their
wrapper's ``source``; the tensors of ``init_from``) is left out of Lightning checkpoints and of
``weights/model.safetensors``: the export lists the file it comes from instead, and rebuilding the run's module from
its config loads it again. Frozen tensors initialised in code have no such file and stay in.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence

from torch import nn

from itryon.models.lora import is_lora_parameter


def select_trainable(module: nn.Module, patterns: Sequence[str] | None, *, lora: bool = False) -> None:
    """Decide ``requires_grad`` for the parameters not frozen by their part (VAE, frozen adapters and encoders).

    ``patterns`` (``fnmatch`` over parameter names, e.g. ``backbone.vace_*``, ``conditioning.*``): a parameter trains
    iff its name matches one. None: with ``lora``, the backbone's LoRA weights and everything outside the backbone
    train; otherwise nothing changes. A pattern that matches no parameter is an error listing the top-level names.
    """
    params = dict(module.named_parameters())
    open_names = [n for n, p in params.items() if p.requires_grad]  # frozen by their part stays frozen
    if patterns is None:
        if lora:
            for name in open_names:
                params[name].requires_grad_(not name.startswith("backbone.") or is_lora_parameter(name))
        return
    patterns = list(patterns)
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in params)]
    if unmatched:
        tops = sorted({n.split(".")[0] + "." + n.split(".")[1] if n.count(".") > 1 else n for n in params})
        raise ValueError(
            f"model.trainable pattern(s) {unmatched} match no parameter; names look like {tops[:12]} "
            "(fnmatch patterns, e.g. 'backbone.vace_*', 'conditioning.*', 'backbone.*lora_*')"
        )
    for name in open_names:
        params[name].requires_grad_(any(fnmatch.fnmatchcase(name, p) for p in patterns))


def frozen_tensor_sources(module: nn.Module, loaded: Mapping[str, str] | None = None) -> dict[str, str]:
    """State-dict key -> the file it comes from, for the frozen tensors loaded from files.

    Frozen: a parameter without ``requires_grad``, or a buffer whose nearest enclosing module with parameters has no
    trainable one. Its file: the ``source`` of the nearest enclosing module that has one, else ``loaded[key]``.
    """
    modules = dict(module.named_modules())
    sources = {name: m.source for name, m in modules.items() if isinstance(getattr(m, "source", None), str)}
    params = dict(module.named_parameters())
    out = {}
    for key in module.state_dict():
        if key in params:
            frozen = not params[key].requires_grad
        else:
            frozen = _buffer_is_frozen(key, modules)
        if not frozen:
            continue
        source = next((sources[p] for p in _prefixes(key) if p in sources), None) or (loaded or {}).get(key)
        if source is not None:
            out[key] = source
    return out


def _prefixes(key: str) -> Iterable[str]:
    """Enclosing module names of ``key``, innermost first (``a.b.c`` -> ``a.b``, ``a``, ``""``)."""
    parts = key.split(".")[:-1]
    for i in range(len(parts), -1, -1):
        yield ".".join(parts[:i])


def _buffer_is_frozen(key: str, modules: Mapping[str, nn.Module]) -> bool:
    for prefix in _prefixes(key):
        owner = modules.get(prefix)
        params = list(owner.parameters()) if owner is not None else []
        if params:
            return not any(p.requires_grad for p in params)
    return False


def summarise_sources(sources: Mapping[str, str]) -> dict[str, dict[str, int | list[str]]]:
    """``{file: {"tensors": n, "prefixes": [...]}}`` for the export's listing of frozen tensors."""
    out: dict[str, dict] = {}
    for key, source in sorted(sources.items()):
        entry = out.setdefault(source, {"tensors": 0, "prefixes": []})
        entry["tensors"] += 1
        top = ".".join(key.split(".")[:2])
        if top not in entry["prefixes"]:
            entry["prefixes"].append(top)
    return out


def parameter_summary(module: nn.Module, depth: int = 3) -> str:
    """A table of trained and frozen parameter counts per component (names cut to ``depth`` parts; LoRA weights
    counted on their own line)."""
    rows: dict[str, list[int]] = {}
    for name, param in module.named_parameters():
        parts = name.split(".")
        group = ".".join(parts[: depth if parts[0] == "conditioning" else 1])
        if is_lora_parameter(name):
            group += " (LoRA)"
        row = rows.setdefault(group, [0, 0])
        row[0 if param.requires_grad else 1] += param.numel()
    total = [sum(r[0] for r in rows.values()), sum(r[1] for r in rows.values())]
    width = max([len(g) for g in rows] + [9])
    lines = [f"{'component':<{width}}  {'trained':>14}  {'frozen':>14}"]
    lines += [f"{g:<{width}}  {t:>14,}  {f:>14,}" for g, (t, f) in rows.items()]
    lines.append(f"{'total':<{width}}  {total[0]:>14,}  {total[1]:>14,}")
    return "\n".join(lines)


class FrozenFromFiles:
    """LightningModule mixin: Lightning checkpoints without the frozen tensors loaded from files.

    ``on_save_checkpoint`` removes them from ``state_dict`` and lists their files under ``frozen_sources`` (not in
    the sharded checkpoints of ``ModelParallelStrategy(save_distributed_checkpoint=True)``, whose loader needs every
    key);
    ``on_load_checkpoint`` accepts a checkpoint that lacks exactly such tensors (the module rebuilt from the run's
    config has loaded them again) and refuses one that lacks any other. The module sets ``strict_loading = False``
    and ``loaded_sources`` (key -> file of the tensors it loaded itself, e.g. from ``init_from``).
    """

    loaded_sources: dict[str, str]

    def frozen_sources(self) -> dict[str, str]:
        return frozen_tensor_sources(self, getattr(self, "loaded_sources", None))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        strategy = getattr(getattr(self, "_trainer", None), "strategy", None)
        if getattr(strategy, "_save_distributed_checkpoint", False):
            return  # Lightning's sharded (DCP) load needs every key of the module: such checkpoints keep them all
        sources = self.frozen_sources()
        state = checkpoint.get("state_dict", {})
        for key in sources:
            state.pop(key, None)
        checkpoint["frozen_sources"] = summarise_sources(sources)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "state_dict" not in checkpoint:
            return  # a sharded checkpoint: the strategy has loaded it into the modules (every key) already
        state = checkpoint["state_dict"]
        own = set(self.state_dict())
        missing = sorted(own - set(state) - set(self.frozen_sources()))
        unexpected = sorted(set(state) - own)
        if missing or unexpected:
            what = f"lacks {missing[:5]}" if missing else f"has tensors the model lacks: {unexpected[:5]}"
            raise ValueError(
                f"checkpoint {what} ({len(missing) or len(unexpected)} in all); only frozen tensors loaded from files "
                "may be missing"
            )
