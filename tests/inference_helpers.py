"""A run folder of the default tiny config with perturbed random weights (no training), for the inference tests."""

from __future__ import annotations

from pathlib import Path

import torch

from callbacks.export import save_safetensors_atomic
from itryon.config import CONFIG_ROOT, instantiate, to_yaml
from itryon.training.run import prepare_config


def tiny_run(root: Path, overrides: tuple[str, ...] = ()) -> Path:
    """``root`` as a run folder: ``config.yaml`` and ``weights/model.safetensors``; every weight moved by seeded noise
    so that each part (zero-initialised heads included) changes the output."""
    cfg = prepare_config(CONFIG_ROOT / "default.yaml", ["model.sampler.num_steps=2", *overrides])
    torch.manual_seed(0)
    module = instantiate(cfg.model, "model")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(to_yaml(cfg))
    state = {k: v.contiguous() for k, v in module.state_dict().items() if not k.startswith("vae.")}
    save_safetensors_atomic(state, root / "weights" / "model.safetensors")
    return root
