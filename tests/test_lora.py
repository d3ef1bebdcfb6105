"""LoRA through peft on the backbone: an exact no-op at init, a step moves only LoRA and adapter weights, the merged
weights give the unmerged output, and the exports."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from peft import LoraConfig
from safetensors.torch import load_file

from callbacks.export import SafetensorsExport
from itryon.config import CONFIG_ROOT, instantiate
from itryon.models import BackboneInputs, WanDiT
from itryon.models.lora import add_lora, is_lora_parameter, merged_state_dict
from itryon.training.run import prepare_config

TARGETS = ["q", "k", "v", "o", "ffn.0", "ffn.2"]


def lora_module(*overrides: str):
    cfg = prepare_config(CONFIG_ROOT / "experiment" / "lora.yaml", list(overrides))
    torch.manual_seed(0)
    return instantiate(cfg.model, "model")


def test_lora_is_an_exact_no_op_at_init():
    torch.manual_seed(0)
    model = WanDiT(
        in_channels=4, out_channels=4, dim=24, ffn_dim=40, num_layers=2, num_heads=2, text_dim=16, freq_dim=32
    )
    g = torch.Generator().manual_seed(1)
    latents, context = torch.randn(1, 4, 2, 4, 4, generator=g), torch.randn(1, 5, 16, generator=g)
    inputs = BackboneInputs(context=context)
    with torch.no_grad():
        before = model(latents, torch.tensor([500.0]), inputs)
        add_lora(model, LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS))
        after = model(latents, torch.tensor([500.0]), inputs)
    assert (
        sum(is_lora_parameter(n) for n, _ in model.named_parameters()) == 2 * 10 * 2
    )  # A and B; self- and cross-attention q, k, v, o and 2 ffn layers; 2 blocks
    assert torch.equal(before, after)
    fresh = WanDiT(
        in_channels=4, out_channels=4, dim=24, ffn_dim=40, num_layers=1, num_heads=2, text_dim=16, freq_dim=32
    )
    with pytest.raises(
        ValueError, match=r"model.lora.target_modules=\['nope'\].*linear layers end in \['ffn.0', 'ffn.2', 'k'"
    ):
        add_lora(fresh, LoraConfig(r=4, target_modules=["nope"]))


@pytest.fixture(scope="module")
def stepped(synthetic_batch):
    """The tiny LoRA experiment's module before and after two optimiser steps (its zero-initialised head trains in
    the first, which opens the gradient to the LoRA weights and the adapters in the second)."""
    module = lora_module("model.warmup_steps=0")  # no warm-up: the first step moves the weights
    before = {k: v.clone() for k, v in module.state_dict().items()}
    optimizer = module.configure_optimizers()["optimizer"]
    module.train()
    for step in range(2):
        optimizer.zero_grad()
        module.diffusion_loss(synthetic_batch, generator=torch.Generator().manual_seed(step))["loss"].backward()
        optimizer.step()
    return module, before


def test_only_lora_adapter_and_chosen_weights_change_in_a_step(stepped):
    module, before = stepped
    changed = {k for k, v in module.state_dict().items() if not torch.equal(v, before[k])}
    trained = {n for n, p in module.named_parameters() if p.requires_grad}
    assert changed <= trained
    assert all(is_lora_parameter(k) or k.startswith(("conditioning.", "backbone.head.")) for k in trained)
    assert any(".lora_B." in k for k in changed) and any(k.startswith("conditioning.adapters.hands.") for k in changed)
    frozen_backbone = [n for n, p in module.backbone.named_parameters() if not p.requires_grad]
    assert frozen_backbone and all(not is_lora_parameter(n) for n in frozen_backbone)


def test_merged_weights_give_the_unmerged_output(stepped, synthetic_batch):
    module, _ = stepped
    merged = merged_state_dict(module, module.state_dict())
    plain = lora_module("model.lora=null", "model.trainable=null")
    plain.load_state_dict(merged, strict=True)  # the names of the module without LoRA
    with torch.no_grad():
        expected = module.generate(synthetic_batch, num_steps=2, seed=3)
        actual = plain.generate(synthetic_batch, num_steps=2, seed=3)
        unchanged = lora_module("model.lora=null", "model.trainable=null").generate(
            synthetic_batch, num_steps=2, seed=3
        )
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    assert (unchanged - expected).abs().max() > 1e-4  # the step did move the output


def test_exports_of_lora_alone_and_merged(stepped, tmp_path):
    module, _ = stepped
    trainer = SimpleNamespace(default_root_dir=str(tmp_path), is_global_zero=True, global_step=1)
    SafetensorsExport(merged=True).export(trainer, module)
    lora = load_file(tmp_path / "weights" / "lora.safetensors")
    assert lora and all(".lora_A." in k or ".lora_B." in k for k in lora)
    assert len(lora) == sum(is_lora_parameter(n) for n, _ in module.backbone.named_parameters())
    merged = load_file(tmp_path / "weights" / "merged.safetensors")
    assert not any(is_lora_parameter(k) or ".base_layer." in k for k in merged)
    expected = merged_state_dict(module, module.state_dict())
    assert torch.equal(merged["backbone.blocks.0.self_attn.q.weight"], expected["backbone.blocks.0.self_attn.q.weight"])
