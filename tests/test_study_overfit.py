"""The study recipe learns: trained briefly on a few clips, it beats copying the input on a training clip."""

from __future__ import annotations

import torch

from itryon.config import CONFIG_ROOT, instantiate
from itryon.data.contract import collate
from itryon.metrics.paired import VideoPSNR, VideoSSIM
from itryon.training.run import prepare_config


def scores(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    ssim, psnr = VideoSSIM(), VideoPSNR()
    ssim.update(pred, target)
    psnr.update(pred, target)
    return float(ssim.compute()), float(psnr.compute())


def test_study_recipe_overfits_a_few_clips_past_copy_the_input() -> None:
    torch.manual_seed(0)
    clips = 2
    cfg = prepare_config(
        CONFIG_ROOT / "experiment" / "study.yaml",
        [f"data.train.num_clips={clips}", f"data.batch_size={clips}", "model.vae.dataset.num_clips=8"],
    )
    module = instantiate(cfg.model, "model")
    data = instantiate(cfg.data, "data")
    data.setup("fit")
    batch = collate([data.train_set[i] for i in range(clips)])
    optim = module.configure_optimizers()  # the recipe's optimizer (Muon + AdamW) and warm-up schedule
    optimizer, schedule = optim["optimizer"], optim["lr_scheduler"]["scheduler"]
    module.train()
    losses = []
    for _ in range(120):  # 120 epochs of the 2 clips, one batch each
        loss = module.diffusion_loss(batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss))
    assert sum(losses[-10:]) < 0.75 * sum(losses[:10]), losses
    pred = module.generate(batch, seed=0)
    model_ssim, model_psnr = scores(pred, batch["video"])
    copy_ssim, copy_psnr = scores(batch["agnostic"], batch["video"])
    assert model_ssim > copy_ssim + 0.05, (model_ssim, copy_ssim)
    assert model_psnr > copy_psnr + 2.0, (model_psnr, copy_psnr)
