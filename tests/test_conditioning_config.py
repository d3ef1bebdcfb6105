"""The conditioning config pieces: every YAML builds and trains a step, ablations are one-line overrides, and a new
adapter (depth maps) joins through config only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from itryon.conditioning import ConditioningStack
from itryon.config import CONFIG_ROOT, instantiate, load_config, validate

PIECES = CONFIG_ROOT / "conditioning"
PLUGINS = Path(__file__).parent / "plugins"
C, S = 48, 2  # PixelVAE(2, 4) latent channels and spatial compression
B, T, H, W = 2, 9, 16, 16
BACKBONE = {
    "_target_": "itryon.models.WanDiT",
    "in_channels": C,
    "out_channels": C,
    "patch_size": [1, 2, 2],
    "dim": 32,
    "ffn_dim": 64,
    "num_layers": 1,
    "num_heads": 2,
    "text_dim": 32,
    "freq_dim": 32,
    "cross_attention_rope": {"_target_": "itryon.models.action_rope.ActionRoPE", "head_dim": 16, "k": 4},
}
VACE = {"vace_layers": [0], "vace_in_channels": 2 * C + S * S}
# what each piece needs from the backbone
MODEL_FOR_PIECE = {
    "itryon_full": VACE,
    "baseline": VACE,
    "itryon_no_vace": {"in_channels": C + C + S * S},
}


def root_config(tmp_path: Path, piece: str, model: dict, overrides: list[str] = ()) -> OmegaConf:
    root = {
        "defaults": [{"conditioning": piece}],
        "model": {
            "vae": {"_target_": "itryon.models.PixelVAE", "spatial_compression": S, "temporal_compression": 4},
            "backbone": {**BACKBONE, **model},
        },
    }
    path = tmp_path / "root.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(root)))
    return load_config(path, list(overrides), config_root=CONFIG_ROOT)


ACTIONS = [[{"start": 1, "end": 6, "text": "pulls the zipper down"}], []]


@pytest.fixture
def batch(make_batch) -> dict:
    """No hand in frames 0..2, depth maps for the plugin adapter, an action caption in sample 0."""
    return make_batch(
        (B, T, H, W), garment=(24, 20), hand_free_frames=3, actions=ACTIONS, extra=("depth", "interaction")
    )


def train_step(cfg, batch) -> tuple[ConditioningStack, torch.Tensor]:
    """Build vae, backbone and stack from ``cfg`` and take one optimiser step on the flow-matching loss."""
    torch.manual_seed(0)
    vae, model, stack = instantiate(cfg.model.vae), instantiate(cfg.model.backbone), instantiate(cfg.conditioning)
    with torch.no_grad():
        model.head.proj.weight.normal_(std=0.05)  # let gradients reach the adapters through a non-zero head
    stack.train()
    x0 = vae.encode(batch["video"])
    noise = torch.randn_like(x0)
    t = torch.rand(B)
    x_t = (1 - t.view(-1, 1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1, 1) * noise
    cond = stack(batch, vae=vae, latent_shape=x0.shape)
    v = model(x_t, t * 1000, cond.inputs)
    loss = (v - (noise - x0)).square().mean()
    params = [p for p in [*model.parameters(), *stack.parameters()] if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    loss.backward()
    opt.step()
    return stack, loss


def test_every_piece_is_covered():
    assert {p.stem for p in PIECES.glob("*.yaml")} == set(MODEL_FOR_PIECE)


@pytest.mark.parametrize("piece", sorted(MODEL_FOR_PIECE))
def test_piece_validates_builds_and_trains_a_step(tmp_path, piece, batch):
    cfg = root_config(tmp_path, piece, MODEL_FOR_PIECE[piece])
    validate(cfg)
    stack, loss = train_step(cfg, batch)
    assert torch.isfinite(loss)
    expected = {
        "itryon_full": {"person", "garment", "hands", "caption", "actions"},
        "baseline": {"person", "garment", "caption"},
        "itryon_no_vace": {"person", "pose", "garment", "hands", "caption", "actions"},
    }[piece]
    assert set(stack.adapters) == expected
    if "hands" in stack.adapters:  # the zero-initialised output learns first, then the rest follows
        assert stack.adapters["hands"].guider.proj.weight.abs().sum() > 0


def test_ablations_are_one_line_overrides(tmp_path, batch):
    full = root_config(tmp_path, "itryon_full", VACE)
    cases = {
        "conditioning.adapters.hands=null": ("conditioning.adapters.hands",),
        "conditioning.adapters.actions=null": ("conditioning.adapters.actions",),
        "conditioning.adapters.actions.positions=none": ("conditioning.adapters.actions.positions",),
        "conditioning.adapters.actions.hard_mask=true": ("conditioning.adapters.actions.hard_mask",),
    }
    flat_full = _flatten(OmegaConf.to_container(full))
    for override, changed in cases.items():
        cfg = root_config(tmp_path, "itryon_full", VACE, [override])
        flat = _flatten(OmegaConf.to_container(cfg))
        diff = {k for k in set(flat) | set(flat_full) if flat.get(k, "<absent>") != flat_full.get(k, "<absent>")}
        assert diff and all(any(k.startswith(c) for c in changed) for k in diff), (override, diff)
    stack = instantiate(
        root_config(tmp_path, "itryon_full", VACE, ["conditioning.adapters.actions.positions=none"]).conditioning
    )
    cond = stack.eval()(batch, vae=instantiate(full.model.vae), latent_shape=(B, C, 3, 8, 8))
    assert (
        cond.inputs.context_positions is None and cond.inputs.context.shape[1] > 64
    )  # captions kept, no A-RoPE positions
    stack = instantiate(root_config(tmp_path, "itryon_full", VACE, ["conditioning.adapters.hands=null"]).conditioning)
    assert "hands" not in stack.adapters and "hand_prior" not in stack.required_keys


def test_a_depth_adapter_joins_through_config_only(tmp_path, monkeypatch, batch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv("ITRYON_TARGET_PACKAGES", "depth_adapter")  # a user's own package joins the allowed ones
    entry = (
        "conditioning.adapters.depth={_target_: depth_adapter.DepthAdapter, dim: '${model.backbone.dim}', "
        "patch_size: '${model.backbone.patch_size}', spatial_compression: 2, temporal_compression: 4, hidden_dim: 16}"
    )
    cfg = root_config(tmp_path, "itryon_full", VACE, [entry])
    validate(cfg)
    stack, loss = train_step(cfg, batch)
    assert type(stack.adapters["depth"]).__name__ == "DepthAdapter" and "depth" in stack.required_keys
    assert torch.isfinite(loss) and stack.adapters["depth"].proj.weight.abs().sum() > 0
    # and it starts as a no-op: a fresh depth adapter adds an exact zero residual
    fresh = instantiate(cfg.conditioning).eval()
    plain = instantiate(root_config(tmp_path, "itryon_full", VACE).conditioning).eval()
    vae = instantiate(cfg.model.vae)
    with_depth = fresh(batch, vae=vae, latent_shape=(B, C, 3, 8, 8))
    without = plain(batch, vae=vae, latent_shape=(B, C, 3, 8, 8))
    assert torch.equal(with_depth.inputs.token_residual, without.inputs.token_residual)


def _flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    return {prefix: node}
