"""Frozen tensors loaded from files stay out of Lightning checkpoints and weights/model.safetensors; the export
lists their files; runs resume and reload without them; ``trainable`` patterns choose what trains."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from safetensors import safe_open
from safetensors.torch import load_file

from callbacks.export import SafetensorsExport
from itryon.conditioning import ConditioningStack, GarmentAdapter, GlobalCaptionAdapter, PersonAdapter
from itryon.diffusion import ActionConstraintLoss
from itryon.models import T5TextEncoder, WanDiT, WanVAE
from itryon.training import TryOnModule
from itryon.training.checkpoints import AtomicCheckpointIO
from itryon.training.freezing import parameter_summary
from itryon.training.weights import load_trained_weights


@pytest.fixture(scope="module")
def backbone_folder(tmp_path_factory):
    from diffusers import WanVACETransformer3DModel

    torch.manual_seed(0)
    model = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=16, freq_dim=32, ffn_dim=40, num_layers=2, rope_max_seq_len=64, vace_layers=[0], vace_in_channels=96,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("vace") / "transformer"
    model.save_pretrained(folder)
    return folder


def build(backbone_folder, wan_vae_folder, t5_folder, trainable=("backbone.vace_*", "backbone.head.*")):
    conditioning = ConditioningStack(
        {
            "person": PersonAdapter(mode="vace", latent_channels=16, spatial_compression=8, mask_threshold=0.5),
            "garment": GarmentAdapter(mode="wan", latent_channels=16),
            "caption": GlobalCaptionAdapter(T5TextEncoder(t5_folder, max_length=8, dtype="bfloat16"), drop_prob=0.0),
        }
    )
    return TryOnModule(
        WanDiT.from_pretrained(backbone_folder),
        conditioning,
        WanVAE(wan_vae_folder, dtype="bfloat16"),
        loss=ActionConstraintLoss(ac_weight=0.0),
        prediction="velocity",
        lr=1e-3,
        trainable=list(trainable) if trainable is not None else None,
    )


def loader(make_batch):
    batch = make_batch((1, 5, 16, 16), garment=(24, 40), captions=("a person lifts the hem",), extra=("interaction",))
    return torch.utils.data.DataLoader([batch] * 4, batch_size=None)


def trainer(root, steps):
    return L.Trainer(
        default_root_dir=str(root), max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
        callbacks=[ModelCheckpoint(dirpath=str(root / "checkpoints"), save_last=True), SafetensorsExport()],
    )  # fmt: skip


def test_checkpoint_and_export_hold_no_frozen_tensor(tmp_path, backbone_folder, wan_vae_folder, t5_folder, make_batch):
    module = build(backbone_folder, wan_vae_folder, t5_folder)
    frozen = module.frozen_sources()
    params = dict(module.named_parameters())
    trained = {n for n, p in params.items() if p.requires_grad}
    assert trained and all(n.startswith(("backbone.vace_", "backbone.head.")) for n in trained)
    # the frozen VAE, the frozen T5 encoder and the frozen main blocks of the loaded backbone, each with its file
    assert {frozen[k] for k in frozen} == {str(wan_vae_folder), str(t5_folder), str(backbone_folder)}
    assert any(k.startswith("vae.") for k in frozen) and any(k.startswith("backbone.blocks.") for k in frozen)
    assert any(".caption.encoder." in k for k in frozen) and not set(frozen) & trained
    before = {k: v.clone() for k, v in module.state_dict().items()}

    trainer(tmp_path, 2).fit(module, loader(make_batch))

    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    exported = load_file(tmp_path / "weights" / "model.safetensors")
    for state in (ckpt["state_dict"], exported):
        assert not set(state) & set(frozen)
        assert all(params[k].requires_grad for k in state if k in params)  # every parameter kept is a trained one
        assert trained <= set(state)
    assert sorted(ckpt["frozen_sources"]) == sorted({str(wan_vae_folder), str(t5_folder), str(backbone_folder)})
    listing = json.loads((tmp_path / "weights" / "sources.json").read_text())
    assert sum(entry["tensors"] for entry in listing.values()) == len(frozen)
    with safe_open(str(tmp_path / "weights" / "model.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["frozen_sources"]) == listing
    assert not torch.equal(module.state_dict()["backbone.head.proj.weight"], before["backbone.head.proj.weight"])

    # a module rebuilt from the same files takes the lean checkpoint and the lean export
    resumed = build(backbone_folder, wan_vae_folder, t5_folder)
    trainer(tmp_path / "resumed", 3).fit(resumed, loader(make_batch), ckpt_path=tmp_path / "checkpoints" / "last.ckpt")
    reloaded = build(backbone_folder, wan_vae_folder, t5_folder)
    assert load_trained_weights(reloaded, tmp_path / "weights" / "model.safetensors") == []
    for key, value in module.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    with pytest.raises(ValueError, match=r"checkpoint lacks \['backbone.head.modulation'"):
        reloaded.on_load_checkpoint({"state_dict": {}})


def test_trainable_patterns_and_the_summary(backbone_folder, wan_vae_folder, t5_folder):
    module = build(backbone_folder, wan_vae_folder, t5_folder, trainable=["backbone.vace_blocks.*"])
    counts = {True: 0, False: 0}
    for name, p in module.named_parameters():
        counts[p.requires_grad] += p.numel()
        assert p.requires_grad == name.startswith("backbone.vace_blocks.")
    table = parameter_summary(module)
    assert f"{counts[True]:,}" in table.splitlines()[-1] and f"{counts[False]:,}" in table.splitlines()[-1]
    assert table.splitlines()[1].startswith("backbone")
    with pytest.raises(ValueError, match=r"model.trainable pattern\(s\) \['backbone.nope\*'\] match no parameter"):
        build(backbone_folder, wan_vae_folder, t5_folder, trainable=["backbone.nope*"])
    with pytest.raises(ValueError, match="no trainable parameters"):
        build(backbone_folder, wan_vae_folder, t5_folder, trainable=["vae.*"]).configure_optimizers()
