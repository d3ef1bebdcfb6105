"""Training starts from a Wan-VACE checkpoint folder written by diffusers, through the config alone."""

from __future__ import annotations

from pathlib import Path

import torch

from itryon.config import CONFIG_ROOT, instantiate
from itryon.data.contract import collate
from itryon.data.synthetic import SyntheticTryOnDataset
from itryon.models import BackboneInputs
from itryon.training.run import prepare_config


def save_tiny_vace(folder: Path) -> torch.nn.Module:
    from diffusers import WanVACETransformer3DModel

    torch.manual_seed(0)
    model = WanVACETransformer3DModel(  # the shapes of configs/model/tiny_vace.yaml
        patch_size=(1, 2, 2),
        num_attention_heads=4,
        attention_head_dim=16,
        in_channels=16,
        out_channels=16,
        text_dim=64,
        freq_dim=64,
        ffn_dim=128,
        num_layers=2,
        cross_attn_norm=True,
        eps=1e-6,
        rope_max_seq_len=1024,
        vace_layers=[0, 1],
        vace_in_channels=48,
    )
    for p in model.parameters():  # diffusers zero-initialises some projections; make every weight matter
        torch.nn.init.normal_(p, std=0.02)
    model.save_pretrained(folder)
    return model.eval()


def test_default_config_fine_tunes_a_diffusers_vace_checkpoint(tmp_path: Path) -> None:
    reference = save_tiny_vace(tmp_path / "transformer")
    cfg = prepare_config(
        CONFIG_ROOT / "default.yaml",
        [
            "model.backbone._target_=itryon.models.WanDiT.from_pretrained",
            f"+model.backbone.path={tmp_path}/transformer",
            "model.backbone.zero_init_gates=true",
            "model.prediction=velocity",
            "model.residual=false",
            "model.loss.space=velocity",
        ],
    )
    module = instantiate(cfg.model, "model")
    backbone = module.backbone

    # 1. the loaded backbone computes what diffusers computes
    latents, context = torch.randn(1, 16, 2, 6, 8), torch.randn(1, 7, 64)
    vace = torch.randn(1, 48, 2, 6, 8)
    t = torch.tensor([400.0])
    with torch.no_grad():
        ours = backbone(latents, t, BackboneInputs(context, vace_context=vace))
        theirs = reference(latents, t, context, control_hidden_states=vace, return_dict=False)[0]
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    gates = [n for n, _ in backbone.named_parameters() if n.endswith(".gate")]
    assert gates and all(torch.count_nonzero(p) == 0 for n, p in backbone.named_parameters() if n in gates)

    # 2. and it trains with the method's adapters on top
    ds = SyntheticTryOnDataset(num_clips=2)
    batch = collate([ds[0], ds[1]])
    opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    loss = module.diffusion_loss(batch, generator=gen)["loss"]
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in backbone.named_parameters() if n in gates)
