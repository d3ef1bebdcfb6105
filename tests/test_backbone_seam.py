"""The backbone seam: kinds of conditioning input, the build-time check of adapters against the backbone, and the
runtime check of inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from itryon.conditioning import ActionCaptionAdapter, ConditioningStack, GlobalCaptionAdapter, PersonAdapter
from itryon.models import BackboneInputs, ByteTextEncoder, PixelVAE, WanDiT
from itryon.models.action_rope import ActionRoPE
from itryon.training import TryOnModule

C, S = 48, 2  # PixelVAE(2, 4)
SHAPE = dict(in_channels=C, out_channels=C, dim=32, ffn_dim=64, num_layers=1, num_heads=2, text_dim=32, freq_dim=32)


def stack(**adapters) -> ConditioningStack:
    torch.manual_seed(0)
    return ConditioningStack({"caption": GlobalCaptionAdapter(ByteTextEncoder(32, max_length=16)), **adapters})


def test_inputs_name_their_kinds():
    context = torch.zeros(1, 3, 8)
    assert BackboneInputs(context).kinds == {"context"}
    full = BackboneInputs(
        context,
        context_positions=torch.zeros(1, 3),
        context_mask=torch.ones(1, 2, 3, dtype=torch.bool),
        context_gated=torch.zeros(1, 3, dtype=torch.bool),
        channels=torch.zeros(1, 2, 2, 4, 4),
        vace_context=torch.zeros(1, 6, 2, 4, 4),
        reference_latents=torch.zeros(1, 4, 1, 4, 4),
        token_residual=torch.zeros(1, 8, 8),
        extra_tokens=torch.zeros(1, 2, 8),
    )
    assert full.kinds == {
        "context",
        "context_positions",
        "context_mask",
        "gated_context",
        "channels",
        "vace",
        "reference",
        "residual",
        "tokens",
    }
    latents = torch.ones(1, 3, 2, 4, 4)
    assert (
        full.with_channels(latents).shape == (1, 5, 2, 4, 4)
        and BackboneInputs(context).with_channels(latents) is latents
    )


def test_wan_dit_accepts_follow_its_branches():
    plain = WanDiT(**SHAPE)
    assert "vace" not in plain.accepts and "context_positions" not in plain.accepts
    assert {"channels", "reference", "tokens", "residual", "context_mask", "gated_context"} <= plain.accepts
    full = WanDiT(**SHAPE, vace_layers=[0], vace_in_channels=2 * C + S * S, cross_attention_rope=ActionRoPE(16))
    assert {"vace", "context_positions"} <= full.accepts


def test_an_adapter_asking_for_a_kind_the_backbone_lacks_fails_when_the_model_is_built():
    vae = PixelVAE(S, 4)
    with pytest.raises(
        ValueError,
        match=r"adapter 'actions' \(ActionCaptionAdapter\) gives \['context_positions'\] "
        r"inputs, which the backbone WanDiT does not accept",
    ):
        TryOnModule(WanDiT(**SHAPE), stack(actions=ActionCaptionAdapter(k=4)), vae)
    with pytest.raises(ValueError, match=r"adapter 'person' \(PersonAdapter\) gives \['vace'\].*WanDiT.*null"):
        TryOnModule(WanDiT(**SHAPE), stack(person=PersonAdapter("vace", C, S)), vae)
    TryOnModule(WanDiT(**SHAPE), stack(actions=ActionCaptionAdapter(k=4, positions="none")), vae)  # accepted


def test_inputs_of_a_kind_the_backbone_lacks_fail_naming_the_field():
    model = WanDiT(**SHAPE)
    latents, t, context = torch.zeros(1, C, 2, 4, 4), torch.zeros(1), torch.zeros(1, 3, 32)
    with pytest.raises(
        ValueError, match=r"does not accept \['context_positions'\] inputs \(BackboneInputs.context_positions\)"
    ):
        model(latents, t, BackboneInputs(context, context_positions=torch.zeros(1, 3)))
    with pytest.raises(
        TypeError, match=r"called as \(latents, timestep, BackboneInputs\(context, ...\)\); got a Tensor"
    ):
        model(latents, t, context)


def test_a_backbone_class_joins_through_config_only_and_trains(tmp_path, monkeypatch):
    import json

    from omegaconf import OmegaConf

    from itryon.cli.train import main

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    monkeypatch.setenv("ITRYON_TARGET_PACKAGES", "conv_backbone")  # a user's own package joins the allowed ones
    config = {
        "defaults": ["/default"],
        "model": {
            "backbone": {
                "_replace_": True,
                "_target_": "conv_backbone.ConvBackbone",
                "_partial_": True,
                "out_channels": 16,
                "text_dim": 64,
            },
            "conditioning": {
                "adapters": {"hands": None, "actions": None, "garment": {"dim": 32, "patch_size": [1, 2, 2]}}
            },
        },
    }
    path = tmp_path / "conv.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(config)))
    fast = [
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "data.batch_size=2",
        "data.train.num_clips=4",
        "data.val.num_clips=2",
        "model.sampler.num_steps=1",
        "callbacks.samples=null",
        f"output_dir={tmp_path / 'runs'}",
        "name=conv",
    ]
    assert main(["--config", str(path), *fast]) == 0
    (run,) = (tmp_path / "runs" / "conv").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["global_step"] == 2 and "val/loss" in metrics["metrics"]
    weights = load_file(run / "weights" / "model.safetensors")
    assert "backbone.input.weight" in weights and weights["backbone.input.weight"].shape[1] == 2 * 16 + 48
