"""I3D and 3D-ResNeXt-101 load checkpoints laid out like the reference files, from the local weights folder."""

from __future__ import annotations

import pytest
import torch

from itryon.metrics.i3d import InceptionI3d
from itryon.metrics.resnext3d import resnext101
from itryon.metrics.vfid import i3d_network, resnext_network
from itryon.metrics.weights import MissingWeightsError, find_weights, load_state_dict

# Inception blocks of pytorch-i3d's InceptionI3d: (name, in_channels, [b0, b1a, b1b, b2a, b2b, b3b])
I3D_BLOCKS = [
    ("Mixed_3b", 192, [64, 96, 128, 16, 32, 32]),
    ("Mixed_3c", 256, [128, 128, 192, 32, 96, 64]),
    ("Mixed_4b", 480, [192, 96, 208, 16, 48, 64]),
    ("Mixed_4c", 512, [160, 112, 224, 24, 64, 64]),
    ("Mixed_4d", 512, [128, 128, 256, 24, 64, 64]),
    ("Mixed_4e", 512, [112, 144, 288, 32, 64, 64]),
    ("Mixed_4f", 528, [256, 160, 320, 32, 128, 128]),
    ("Mixed_5b", 832, [256, 160, 320, 32, 128, 128]),
    ("Mixed_5c", 832, [384, 192, 384, 48, 128, 128]),
]


def _unit(prefix: str, cin: int, cout: int, k: int, bn: bool = True, bias: bool = False) -> dict[str, torch.Size]:
    out = {f"{prefix}.conv3d.weight": torch.Size([cout, cin, k, k, k])}
    if bias:
        out[f"{prefix}.conv3d.bias"] = torch.Size([cout])
    if bn:
        for p in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.bn.{p}"] = torch.Size([cout])
        out[f"{prefix}.bn.num_batches_tracked"] = torch.Size([])
    return out


def reference_i3d_layout() -> dict[str, torch.Size]:
    """Key names and shapes of pytorch-i3d's InceptionI3d(400) state dict, written out from its definition."""
    keys = {}
    keys.update(_unit("Conv3d_1a_7x7", 3, 64, 7))
    keys.update(_unit("Conv3d_2b_1x1", 64, 64, 1))
    keys.update(_unit("Conv3d_2c_3x3", 64, 192, 3))
    for name, cin, w in I3D_BLOCKS:
        keys.update(_unit(f"{name}.b0", cin, w[0], 1))
        keys.update(_unit(f"{name}.b1a", cin, w[1], 1))
        keys.update(_unit(f"{name}.b1b", w[1], w[2], 3))
        keys.update(_unit(f"{name}.b2a", cin, w[3], 1))
        keys.update(_unit(f"{name}.b2b", w[3], w[4], 3))
        keys.update(_unit(f"{name}.b3b", cin, w[5], 1))
    keys.update(_unit("logits", 1024, 400, 1, bn=False, bias=True))
    return keys


def _bn(prefix: str, c: int) -> dict[str, torch.Size]:
    out = {f"{prefix}.{p}": torch.Size([c]) for p in ("weight", "bias", "running_mean", "running_var")}
    out[f"{prefix}.num_batches_tracked"] = torch.Size([])
    return out


def reference_resnext_layout() -> dict[str, torch.Size]:
    """Key names and shapes of 3D-ResNets-PyTorch resnext.resnet101(cardinality=32, shortcut B), written out."""
    keys = {"conv1.weight": torch.Size([64, 3, 7, 7, 7]), **_bn("bn1", 64)}
    inplanes = 64
    for li, (planes, blocks, stride) in enumerate([(128, 3, 1), (256, 4, 2), (512, 23, 2), (1024, 3, 2)], start=1):
        mid = 32 * (planes // 32)
        for bi in range(blocks):
            p = f"layer{li}.{bi}"
            cin = inplanes if bi == 0 else planes * 2
            keys[f"{p}.conv1.weight"] = torch.Size([mid, cin, 1, 1, 1])
            keys.update(_bn(f"{p}.bn1", mid))
            keys[f"{p}.conv2.weight"] = torch.Size([mid, mid // 32, 3, 3, 3])
            keys.update(_bn(f"{p}.bn2", mid))
            keys[f"{p}.conv3.weight"] = torch.Size([planes * 2, mid, 1, 1, 1])
            keys.update(_bn(f"{p}.bn3", planes * 2))
            if bi == 0 and (stride != 1 or inplanes != planes * 2):
                keys[f"{p}.downsample.0.weight"] = torch.Size([planes * 2, cin, 1, 1, 1])
                keys.update(_bn(f"{p}.downsample.1", planes * 2))
        inplanes = planes * 2
    keys["fc.weight"] = torch.Size([400, 2048])
    keys["fc.bias"] = torch.Size([400])
    return keys


def _random_state(layout: dict[str, torch.Size], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(shape, generator=g) * 0.05
    return state


def test_i3d_layout_matches_reference():
    ours = {k: v.shape for k, v in InceptionI3d().state_dict().items()}
    assert ours == reference_i3d_layout()


def test_resnext_layout_matches_reference():
    ours = {k: v.shape for k, v in resnext101().state_dict().items()}
    assert ours == reference_resnext_layout()


def test_i3d_loads_reference_file(tmp_path):
    state = _random_state(reference_i3d_layout(), seed=0)
    torch.save(state, tmp_path / "i3d.pt")  # a plain state dict, as the VFID scripts ship it
    net = i3d_network(tmp_path)
    assert torch.equal(net.Mixed_5c.b1b.conv3d.weight, state["Mixed_5c.b1b.conv3d.weight"])
    assert torch.equal(net.logits.conv3d.bias, state["logits.conv3d.bias"])
    with torch.no_grad():
        feats = net.eval()(torch.randn(2, 3, 10, 32, 32))
    assert feats.shape == (2, 1024) and torch.isfinite(feats).all()
    # the reference head: features = mean over time of the Mixed_5c map averaged over space
    with torch.no_grad():
        fmap = net.feature_map(torch.ones(1, 3, 10, 32, 32))
    assert torch.allclose(net(torch.ones(1, 3, 10, 32, 32)), fmap.mean(dim=(3, 4)).mean(2), atol=1e-6)


def test_resnext_loads_wrapped_dataparallel_checkpoint(tmp_path, monkeypatch):
    state = _random_state(reference_resnext_layout(), seed=1)
    checkpoint = {"epoch": 200, "arch": "resnext-101", "state_dict": {f"module.{k}": v for k, v in state.items()}}
    torch.save(checkpoint, tmp_path / "resnext-101.pth")
    monkeypatch.setenv("ITRYON_WEIGHTS", str(tmp_path))
    net = resnext_network()
    assert torch.equal(net.layer3[22].conv2.weight, state["layer3.22.conv2.weight"])
    assert torch.equal(net.fc.weight, state["fc.weight"])
    with torch.no_grad():
        feats = net.eval()(torch.randn(1, 3, 10, 32, 32))
    assert feats.shape == (1, 2048)


def test_missing_weight_file_names_file_and_folder(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"'i3d\.pt' not found in '.*'.*pytorch-i3d"):
        i3d_network(tmp_path)
    with pytest.raises(MissingWeightsError, match=str(tmp_path)):
        find_weights("resnext-101.pth", tmp_path)


def test_missing_weights_folder_is_explained(monkeypatch):
    monkeypatch.delenv("ITRYON_WEIGHTS", raising=False)
    with pytest.raises(MissingWeightsError, match="ITRYON_WEIGHTS"):
        find_weights("i3d.pt")


def test_wrong_layout_is_reported(tmp_path):
    state = _random_state(reference_i3d_layout(), seed=0)
    state["Mixed_5c.b0.conv3d.weight"] = torch.zeros(3, 3, 1, 1, 1)
    del state["logits.conv3d.bias"]
    torch.save(state, tmp_path / "i3d.pt")
    with pytest.raises(
        ValueError, match=r"missing \['logits\.conv3d\.bias'\].*shape mismatch.*Mixed_5c\.b0\.conv3d\.weight"
    ):
        i3d_network(tmp_path)


def test_safetensors_weights(tmp_path):
    from safetensors.torch import save_file

    state = _random_state(reference_i3d_layout(), seed=2)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "i3d.safetensors"))
    loaded = load_state_dict(tmp_path / "i3d.safetensors")
    assert torch.equal(loaded["Conv3d_1a_7x7.conv3d.weight"], state["Conv3d_1a_7x7.conv3d.weight"])
    net = i3d_network(tmp_path, filename="i3d.safetensors")
    assert torch.equal(net.Conv3d_2c_3x3.bn.running_var, state["Conv3d_2c_3x3.bn.running_var"])


def test_checkpoints_without_batch_norm_counters_load(tmp_path):
    # checkpoints saved before torch 0.4.1 have no '*.num_batches_tracked'; torch's strict load accepts them
    state = _random_state(reference_i3d_layout(), seed=3)
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert len(old) < len(state)
    torch.save(old, tmp_path / "i3d.pt")
    net = i3d_network(tmp_path)
    assert torch.equal(net.Conv3d_1a_7x7.bn.running_mean, state["Conv3d_1a_7x7.bn.running_mean"])
    assert int(net.Mixed_5c.b3b.bn.num_batches_tracked) == 0
    # any other missing key still fails, naming it
    del old["Conv3d_1a_7x7.bn.running_mean"]
    torch.save(old, tmp_path / "i3d.pt")
    with pytest.raises(ValueError, match=r"missing \['Conv3d_1a_7x7\.bn\.running_mean'\] \(1 keys\)"):
        i3d_network(tmp_path)
