"""The ONNX estimators (RTMPose/DWPose SimCC heads, SCHP-style parsing) on tiny exported models; skipped without
onnxruntime and onnx (the exporter's dependency)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from itryon.preprocess.onnx_estimators import COCO, OnnxParser, OnnxPose  # noqa: E402
from itryon.preprocess.types import LIP, J  # noqa: E402

INPUT = (64, 48)  # model input (H, W)


class SimCC(nn.Module):
    """Always 'sees' joint k at model pixel (8 + k, 10 + 2k), SimCC ratio 2."""

    def forward(self, x):
        k = torch.arange(17)
        simcc_x = torch.zeros(1, 17, INPUT[1] * 2) + 0 * x.mean()
        simcc_y = torch.zeros(1, 17, INPUT[0] * 2) + 0 * x.mean()
        simcc_x[0, k, (8 + k) * 2] = 0.9
        simcc_y[0, k, (10 + 2 * k) * 2] = 0.8
        return simcc_x, simcc_y


class Parser(nn.Module):
    """Label 'upper_clothes' in the model input's middle third of rows, background elsewhere."""

    def forward(self, x):
        logits = torch.zeros(1, 20, INPUT[0], INPUT[1]) + 0 * x.mean()
        logits[0, LIP["upper_clothes"], INPUT[0] // 3 : 2 * INPUT[0] // 3] = 5.0
        logits[0, 0] = 1.0
        return logits


def export(module: nn.Module, path: Path) -> Path:
    torch.onnx.export(module, (torch.zeros(1, 3, *INPUT),), str(path), dynamo=False)
    return path


def test_onnx_pose_maps_simcc_peaks_back_to_frame_pixels(tmp_path: Path) -> None:
    pose = OnnxPose(str(export(SimCC(), tmp_path / "pose.onnx")), input_size=INPUT).estimate(
        np.zeros((2, 128, 96, 3), np.uint8)
    )
    # a 128x96 frame letterboxes into 64x48 at scale 0.5 with no offset: model pixel p is frame pixel 2p
    k = COCO["l_elbow"]
    assert np.allclose(pose.points[:, J["l_elbow"]], (2 * (8 + k), 2 * (10 + 2 * k)))
    assert np.allclose(pose.score[:, J["l_elbow"]], 0.8)
    assert pose.visible[:, J["neck"]].all()


def test_onnx_parser_gives_lip_parts_at_frame_size(tmp_path: Path) -> None:
    seg = OnnxParser(str(export(Parser(), tmp_path / "parse.onnx")), input_size=INPUT).segment(
        np.zeros((1, 60, 90, 3), np.uint8)
    )
    assert seg.parts.shape == (1, 60, 90) and seg.person.shape == (1, 60, 90)
    # 60x90 letterboxes into rows 16..48 of the 64x48 input; the labelled rows 21..42 come back as frame rows ~9..49
    column = seg.parts[0, :, 45]
    assert (column[25:35] == LIP["upper_clothes"]).all() and column[0] == 0 and column[-1] == 0
