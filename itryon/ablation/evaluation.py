"""Scoring predictions of a held-out split with the metric registry: a trained run and the reference rows.

The clips come from the run's config: ``data.<split>`` when the config has one; otherwise the synthetic world's
``data.val`` entry re-pointed at ``split`` (seed 0 / 1 / 2 for train / val / test, as ``itryon synth`` writes
them); or a manifest given explicitly. Every predictor sees the same batches, so that rows compare.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from itryon.config import ConfigError, instantiate
from itryon.data.contract import collate
from itryon.metrics.registry import build_metric, flatten_result, metric_extras, metric_spec

SYNTHETIC = "itryon.data.synthetic.SyntheticTryOnDataset"
MANIFEST = "itryon.data.manifest.InteractiveManifestDataset"
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}

BatchPredictor = Callable[[Mapping[str, Any], int], torch.Tensor]  # (batch, batch index) -> (B, 3, T, H, W)


def eval_data_node(
    cfg: DictConfig,
    split: str = "test",
    num_clips: int | None = None,
    seed: int | None = None,
    manifest: str | None = None,
) -> dict[str, Any]:
    """The ``_target_`` node of the clips to score (plain data, so that it can be stored and compared)."""
    data = cfg.get("data")
    if manifest is not None:
        node: dict[str, Any] = {"_target_": MANIFEST, "manifest": str(manifest)}
        val = data.get("val") if data is not None else None
        if val is not None and val.get("num_frames") is not None:
            node["num_frames"] = int(val.num_frames)
    elif data is not None and data.get(split) is not None:
        node = OmegaConf.to_container(data[split], resolve=True)
    else:
        val = data.get("val") if data is not None else None
        if val is None or val.get("_target_") != SYNTHETIC:
            raise ConfigError(
                f"cannot find the {split!r} clips: the config has no data.{split} entry and data.val is "
                f"{None if val is None else val.get('_target_')!r}, not {SYNTHETIC}; add data.{split} or pass a manifest"
            )
        node = OmegaConf.to_container(val, resolve=True)
        node["split"] = split
        node["seed"] = SPLIT_SEEDS[split]
    if node.get("_target_") == SYNTHETIC:
        if seed is not None:
            node["seed"] = int(seed)
        if num_clips is not None:
            node["num_clips"] = int(num_clips)
    elif num_clips is not None:
        node["limit"] = int(num_clips)  # the first num_clips clips of the manifest
    return node


def build_eval_dataset(node: Mapping[str, Any]) -> Dataset:
    node = copy.deepcopy(dict(node))
    limit = node.pop("limit", None)
    dataset = instantiate(OmegaConf.create(node), "eval data")
    if limit is not None:
        if limit > len(dataset):
            raise ValueError(f"asked for {limit} evaluation clips, {node.get('_target_')} has only {len(dataset)}")
        dataset = Subset(dataset, range(limit))
    return dataset


def score(
    predictors: Mapping[str, BatchPredictor],
    dataset: Dataset,
    metrics: Sequence[str],
    weights_dir: str | Path | None = None,
    batch_size: int = 2,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """Per predictor, the flat results of every metric (``flatten_result`` keys) on ``dataset``."""
    built = {
        name: {m: (metric_spec(m), build_metric(m, weights_dir=weights_dir).to(device)) for m in metrics}
        for name in predictors
    }
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for i, batch in enumerate(tqdm(loader, desc="evaluate", unit="batch", disable=not progress, leave=False)):
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        for name, predict in predictors.items():
            pred = predict(batch, i)
            if tuple(pred.shape) != tuple(batch["video"].shape):
                raise ValueError(
                    f"predictor {name!r} returned {tuple(pred.shape)}, the batch's videos are {tuple(batch['video'].shape)}"
                )
            for spec, metric in built[name].values():
                metric.update(pred, batch["video"], **metric_extras(spec, batch))
    results: dict[str, dict[str, float]] = {}
    for name, table in built.items():
        results[name] = {}
        for m, (_, metric) in table.items():
            results[name].update(flatten_result(m, metric.compute()))
    return results


def higher_is_better(metrics: Sequence[str], keys: Sequence[str]) -> dict[str, bool]:
    """Direction of the keys that are registry metrics; the extra keys a metric reports (counts, rates,
    per-family values) carry no direction the registry knows, and get none."""
    return {key: metric_spec(key).higher_is_better for key in keys if key in metrics}


def finite_or_none(values: Mapping[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if math.isfinite(v) else None) for k, v in values.items()}
