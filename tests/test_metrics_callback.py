"""The validation metrics callback inside a Lightning fit."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchmetrics import Metric, MetricCollection

from callbacks.metrics import ValidationMetrics
from itryon.data.contract import collate, interaction_from_actions
from itryon.metrics.owned import own_metrics
from itryon.metrics.paired import VideoPSNR, VideoSSIM
from itryon.metrics.weights import MissingWeightsError


class Clips(Dataset):
    def __init__(self, n: int = 6) -> None:
        g = torch.Generator().manual_seed(0)
        self.videos = torch.rand(n, 3, 6, 16, 16, generator=g) * 2 - 1

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> dict:
        actions = [{"start": 1, "end": 4, "text": "lifts the hem"}] if i % 2 == 0 else []
        cf = self.videos[i].clone()
        if actions:
            cf[:, 1:4] = 0.0
        mask = torch.zeros(1, 6, 16, 16)
        mask[..., 4:12, 4:12] = 1.0  # the region to generate
        garment = torch.full((3, 8, 8), 0.5)
        garment[0] = -0.5
        return {
            "video": self.videos[i], "actions": actions, "interaction": interaction_from_actions(actions, 6),
            "counterfactual": cf, "agnostic": self.videos[i] * (1 - mask), "agnostic_mask": mask,
            "garment": garment, "garment_mask": torch.ones(1, 8, 8), "meta": {"id": str(i)},
        }  # fmt: skip


class Sampling(L.LightningModule):
    """Samples ``pred = 0.9 * video`` on the first two validation batches, like the training module does."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        return (self.w - 1).square()

    def validation_step(self, batch, batch_idx):
        pred = batch["video"] * 0.9 if batch_idx < 2 else None
        return {"loss": (self.w - 1).square(), "pred": pred}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(callback: ValidationMetrics, epochs: int = 1) -> L.Trainer:
    loader = DataLoader(Clips(), batch_size=2, collate_fn=collate)
    trainer = L.Trainer(
        max_epochs=epochs, limit_train_batches=1, limit_val_batches=3, accelerator="cpu", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[callback],
    )  # fmt: skip
    trainer.fit(Sampling(), train_dataloaders=loader, val_dataloaders=loader)
    return trainer


def test_logs_configured_metrics():
    trainer = _fit(ValidationMetrics(["ssim", "psnr_interaction", "isr_counterfactual"]))
    videos = Clips().videos[:4]  # the two sampled batches
    ssim, psnr = VideoSSIM(), VideoPSNR(window="interaction")
    ssim.update(videos * 0.9, videos)
    psnr.update(videos * 0.9, videos, interaction=torch.tensor([[0, 1, 1, 1, 0, 0], [0] * 6] * 2, dtype=torch.float32))
    logged = trainer.callback_metrics
    assert float(logged["val/ssim"]) == pytest.approx(float(ssim.compute()), abs=1e-6)
    assert float(logged["val/psnr_interaction"]) == pytest.approx(float(psnr.compute()), rel=1e-5)
    assert float(logged["val/isr_counterfactual"]) == 1.0  # 0.9 * video is closer to the video than to zeros
    assert "val/isr_counterfactual_false_interaction_rate" not in logged  # NaN: no judgeable passive clip


def test_references_are_scored_on_the_sampled_clips_and_written_to_metrics_json(tmp_path):
    from callbacks.metrics_file import MetricsFile

    callback = ValidationMetrics(["ssim", "psnr"])
    loader = DataLoader(Clips(), batch_size=2, collate_fn=collate)
    trainer = L.Trainer(
        max_epochs=2, limit_train_batches=1, limit_val_batches=3, accelerator="cpu", logger=False, default_root_dir=tmp_path,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[callback, MetricsFile()],
    )  # fmt: skip
    trainer.fit(Sampling(), train_dataloaders=loader, val_dataloaders=loader)
    batch = collate([Clips()[i] for i in range(4)])  # the two sampled batches only
    copy, fill = VideoSSIM(), VideoPSNR()
    copy.update(batch["agnostic"], batch["video"])
    mean_colour = torch.tensor([-0.5, 0.5, 0.5]).view(1, 3, 1, 1, 1)
    fill.update(batch["agnostic"] * (1 - batch["agnostic_mask"]) + mean_colour * batch["agnostic_mask"], batch["video"])
    refs = callback.reference_values
    assert refs["copy_input"]["ssim"] == pytest.approx(float(copy.compute()), abs=1e-6)
    assert refs["garment_mean_fill"]["psnr"] == pytest.approx(float(fill.compute()), rel=1e-6)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["reference"]["copy_input"]["val/ssim"] == pytest.approx(refs["copy_input"]["ssim"])
    assert set(record["reference"]) == {"copy_input", "garment_mean_fill"}
    assert not any("reference" in k for k in record["metrics"])
    with pytest.raises(ValueError, match="unknown reference"):
        ValidationMetrics(["ssim"], references=["copy_the_input"])


def test_mapping_config_and_epoch_gate():
    cb = ValidationMetrics({"ssim_reflect": {"metric": "ssim", "border": "reflect"}}, every_n_epochs=2)
    trainer = _fit(cb, epochs=1)
    assert "val/ssim_reflect" not in trainer.callback_metrics
    assert cb.descriptions["ssim_reflect"]["border"] == "reflect"
    trainer = _fit(
        ValidationMetrics({"ssim_reflect": {"metric": "ssim", "border": "reflect"}}, every_n_epochs=2), epochs=2
    )
    assert "val/ssim_reflect" in trainer.callback_metrics


def test_missing_weights_fail_at_setup(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"'i3d\.pt' not found in"):
        _fit(ValidationMetrics(["ssim", "vfid_i3d"], weights_dir=tmp_path))


def test_unknown_metric_fails_at_construction():
    with pytest.raises(KeyError, match="unknown metric 'ssmi'; available"):
        ValidationMetrics(["ssmi"])


class Scaled(Metric):
    """A metric with a parameter, like the feature networks of LPIPS and VFID."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.add_state("total", torch.zeros(()), dist_reduce_fx="sum")

    def update(self, pred, target) -> None:
        self.total += self.scale * (pred - target).abs().mean()

    def compute(self):
        return self.total


def test_the_module_owns_its_metrics_and_its_checkpoints_hold_the_model_alone():
    callback = ValidationMetrics(["ssim", "psnr"])
    trainer = _fit(callback)
    module = trainer.lightning_module
    assert module.validation_metrics["val"]["ssim"] is callback.metrics["ssim"]
    assert set(module.validation_metrics) == {"val", "val_reference_copy_input", "val_reference_garment_mean_fill"}

    model = Sampling()
    own_metrics(model, {"val": MetricCollection({"scaled": Scaled()})})
    assert not model.validation_metrics["val"]["scaled"].scale.requires_grad  # never trained
    assert list(model.state_dict()) == ["w"]
    model.load_state_dict({"w": torch.tensor(0.5)}, strict=True)  # a checkpoint without metrics loads
    model.to(torch.float64)
    assert model.validation_metrics["val"]["scaled"].scale.dtype == torch.float64  # it moves with the module
    with pytest.raises(ValueError, match=r"metric collections \['val'\] are already attached to Sampling"):
        own_metrics(model, {"val": MetricCollection({"scaled": Scaled()})})
