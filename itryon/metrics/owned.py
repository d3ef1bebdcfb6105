"""Metric collections owned by the LightningModule they measure, out of its state dict.

Attached as ``module.validation_metrics[name]``, metrics move with the module (devices) and their states sync
across ranks in ``compute``; checkpoints and exported weights still hold the model alone, and a checkpoint written
without them (or with other metrics) loads.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn
from torchmetrics import MetricCollection

ATTRIBUTE = "validation_metrics"


def own_metrics(module: nn.Module, collections: Mapping[str, MetricCollection]) -> None:
    """Add ``collections`` to ``module.validation_metrics`` (frozen, no gradients); a name given twice is an error."""
    owned = getattr(module, ATTRIBUTE, None)
    if owned is None:
        owned = nn.ModuleDict()
        setattr(module, ATTRIBUTE, owned)
        module.register_state_dict_post_hook(_drop_metric_states)
        module.register_load_state_dict_post_hook(_ignore_missing_metric_states)
    taken = sorted(set(collections) & set(owned))
    if taken:
        raise ValueError(f"metric collections {taken} are already attached to {type(module).__name__}")
    for name, collection in collections.items():
        owned[name] = collection.requires_grad_(False)


def _drop_metric_states(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    for key in [k for k in state_dict if k.startswith(f"{prefix}{ATTRIBUTE}.")]:
        del state_dict[key]


def _ignore_missing_metric_states(module: nn.Module, incompatible_keys) -> None:
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not k.startswith(f"{ATTRIBUTE}.")]
