"""WanDiT.from_pretrained on local folders written by diffusers itself (plain, sharded, VACE) and in Wan's layout."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import WanTransformer3DModel, WanVACETransformer3DModel
from safetensors.torch import load_file, save_file

from itryon.models import BackboneInputs, WanDiT

CONFIG = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=4,
    out_channels=4,
    text_dim=16,
    freq_dim=32,
    ffn_dim=40,
    num_layers=2,
    rope_max_seq_len=64,
)


def _reference(vace: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    model = (
        WanVACETransformer3DModel(**CONFIG, vace_layers=[0, 1], vace_in_channels=6)
        if vace
        else WanTransformer3DModel(**CONFIG)
    ).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.3)
    return model


def _inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 3, 4, 6, generator=g), torch.tensor([3.0, 640.0]), torch.randn(2, 5, 16, generator=g)


def _assert_same_outputs(reference, ours, **control):
    latents, timestep, context = _inputs()
    extra = {}
    if control:
        extra = dict(control_hidden_states=control["vace_context"])
    with torch.no_grad():
        expected = reference(latents, timestep, context, return_dict=False, **extra)[0]
        actual = ours(latents, timestep, BackboneInputs(context, **control))
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def _save(model, folder):
    model.save_pretrained(folder)
    return folder


def test_roundtrip_diffusers_folder(tmp_path):
    reference = _reference()
    reference.save_pretrained(tmp_path)
    ours = WanDiT.from_pretrained(tmp_path).eval()
    assert (ours.dim, ours.num_heads, ours.num_layers, ours.in_channels, ours.vace_layers) == (24, 2, 2, 4, [])
    _assert_same_outputs(reference, ours)


def test_roundtrip_sharded_folder(tmp_path):
    reference = _reference(seed=3)
    reference.save_pretrained(tmp_path, max_shard_size="20KB")
    index = json.loads((tmp_path / "diffusion_pytorch_model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1  # really sharded
    ours = WanDiT.from_pretrained(tmp_path).eval()
    _assert_same_outputs(reference, ours)


def test_roundtrip_vace_folder_in_pipeline_layout(tmp_path):
    reference = _reference(vace=True, seed=5)
    reference.save_pretrained(tmp_path / "transformer")
    ours = WanDiT.from_pretrained(tmp_path).eval()  # a pipeline folder: weights under transformer/
    assert ours.vace_layers == [0, 1] and ours.vace_in_channels == 6
    _assert_same_outputs(reference, ours, vace_context=torch.randn(2, 6, 3, 4, 6))


def test_original_wan_layout(tmp_path):
    reference = _reference(vace=True, seed=8)
    native = WanDiT.from_pretrained(_save(reference, tmp_path / "diffusers")).state_dict()
    renamed = {
        k.replace(".cross_norm.", ".norm3.").replace("head.proj.", "head.head."): v.contiguous()
        for k, v in native.items()
    }
    folder = tmp_path / "original"
    folder.mkdir()
    save_file(renamed, str(folder / "diffusion_pytorch_model.safetensors"))
    (folder / "config.json").write_text(
        json.dumps(
            dict(
                _class_name="VaceWanModel",
                model_type="vace",
                dim=24,
                ffn_dim=40,
                freq_dim=32,
                in_dim=4,
                out_dim=4,
                num_heads=2,
                num_layers=2,
                text_dim=16,
                eps=1e-6,
                vace_layers=[0, 1],
                vace_in_dim=6,
            )
        )
    )
    ours = WanDiT.from_pretrained(folder).eval()
    _assert_same_outputs(reference, ours, vace_context=torch.randn(2, 6, 3, 4, 6))


def test_extra_input_channels_start_as_no_op(tmp_path):
    reference = _reference(seed=2)
    reference.save_pretrained(tmp_path)
    base = WanDiT.from_pretrained(tmp_path).eval()
    widened = WanDiT.from_pretrained(tmp_path, in_channels=7).eval()  # 4 pretrained + 3 new
    assert widened.in_channels == 7
    weight = widened.patch_embedding.weight
    torch.testing.assert_close(weight[:, :4], base.patch_embedding.weight, atol=0, rtol=0)
    assert torch.count_nonzero(weight[:, 4:]) == 0
    latents, timestep, context = _inputs()
    with torch.no_grad():
        expected = base(latents, timestep, BackboneInputs(context))
        actual = widened(torch.cat([latents, torch.randn(2, 3, 3, 4, 6)], dim=1), timestep, BackboneInputs(context))
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-6)


def test_wrong_shape_names_the_tensor(tmp_path):
    _reference().save_pretrained(tmp_path)
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    state = load_file(str(path))
    state["blocks.1.attn2.to_k.weight"] = torch.zeros(24, 20)
    save_file(state, str(path))
    with pytest.raises(ValueError, match=r"tensor 'blocks\.1\.cross_attn\.k\.weight': checkpoint shape \(24, 20\)"):
        WanDiT.from_pretrained(tmp_path)


def test_missing_and_unexpected_tensors_are_listed(tmp_path):
    _reference().save_pretrained(tmp_path)
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    state = load_file(str(path))
    del state["blocks.0.ffn.net.2.bias"]
    state["blocks.0.surplus"] = torch.zeros(1)
    save_file(state, str(path))
    with pytest.raises(
        KeyError, match=r"missing tensors \['blocks\.0\.ffn\.2\.bias'\], unexpected tensors \['blocks\.0\.surplus'\]"
    ):
        WanDiT.from_pretrained(tmp_path)


def test_missing_folder_and_shard_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        WanDiT.from_pretrained(tmp_path / "nowhere")
    reference = _reference()
    reference.save_pretrained(tmp_path, max_shard_size="20KB")
    shard = sorted(tmp_path.glob("*-of-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=shard.name):
        WanDiT.from_pretrained(tmp_path)


def test_overrides_may_not_change_architecture(tmp_path):
    _reference().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"num_layers=3 differ from the checkpoint's architecture \(num_layers=2\)"):
        WanDiT.from_pretrained(tmp_path, num_layers=3)
    with pytest.raises(ValueError, match=r"in_channels=3 is fewer than the checkpoint's 4"):
        WanDiT.from_pretrained(tmp_path, in_channels=3)
    model = WanDiT.from_pretrained(tmp_path, gradient_checkpointing=True, attention_backend="math")
    assert model.gradient_checkpointing and model.blocks[0].self_attn.backend == "math"


def test_hook_module_with_state_survives_loading(tmp_path):
    _reference().save_pretrained(tmp_path)

    class ScaledRope(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor(2.0))

        def forward(self, q, k, query_frames, key_positions):
            return q * self.scale, k

    model = WanDiT.from_pretrained(tmp_path, cross_attention_rope=ScaledRope())
    assert model.cross_attention_rope.scale.item() == 2.0
    assert model.patch_embedding.weight.device.type == "cpu" and model.rope.freqs.dtype == torch.float64
    half = WanDiT.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert half.blocks[0].ffn[0].weight.dtype == torch.bfloat16
