"""3D-ResNeXt-101 (cardinality 32, shortcut B) as a video feature network.

Module and parameter names follow ``resnext.py`` of kenshohara/3D-ResNets-PyTorch, so
``resnext-101-kinetics.pth`` (a ``{"state_dict": {"module.conv1.weight": ...}}`` checkpoint) loads
after :func:`itryon.metrics.weights.load_state_dict` unwraps it. Features are ``layer4`` averaged over
time and space (2048-d); for the protocol's 10-frame 224x224 clips the reference ``avgpool`` window
covers the whole ``layer4`` map, so the two agree.
"""

from __future__ import annotations

import torch
from torch import nn


class ResNeXtBottleneck(nn.Module):
    """1x1x1 -> grouped 3x3x3 -> 1x1x1 bottleneck with a residual connection (expansion 2)."""

    expansion = 2

    def __init__(
        self, inplanes: int, planes: int, cardinality: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        mid = cardinality * (planes // 32)
        self.conv1 = nn.Conv3d(inplanes, mid, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = nn.Conv3d(mid, mid, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = nn.Conv3d(mid, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class ResNeXt3D(nn.Module):
    """3D ResNeXt trunk with the Kinetics ``fc`` head (kept so checkpoints load strictly)."""

    def __init__(
        self, layers: tuple[int, int, int, int] = (3, 4, 23, 3), cardinality: int = 32, num_classes: int = 400
    ) -> None:
        super().__init__()
        self.cardinality = cardinality
        self.inplanes = 64
        self.conv1 = nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=(3, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(128, layers[0], stride=1)
        self.layer2 = self._make_layer(256, layers[1], stride=2)
        self.layer3 = self._make_layer(512, layers[2], stride=2)
        self.layer4 = self._make_layer(1024, layers[3], stride=2)
        self.num_features = 1024 * ResNeXtBottleneck.expansion
        self.fc = nn.Linear(self.num_features, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out = planes * ResNeXtBottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:  # shortcut type B: projection where shapes change
            downsample = nn.Sequential(
                nn.Conv3d(self.inplanes, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm3d(out)
            )
        layers = [ResNeXtBottleneck(self.inplanes, planes, self.cardinality, stride, downsample)]
        self.inplanes = out
        layers += [ResNeXtBottleneck(out, planes, self.cardinality) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``layer4`` activations ``(B, 2048, T', H', W')`` of clips ``(B, 3, T, H, W)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clip features ``(B, 2048)``: ``layer4`` averaged over time and space."""
        return self.feature_map(x).mean(dim=(2, 3, 4))


def resnext101(num_classes: int = 400) -> ResNeXt3D:
    """ResNeXt-101 32x: blocks (3, 4, 23, 3), the network of ``resnext-101-kinetics.pth``."""
    return ResNeXt3D((3, 4, 23, 3), cardinality=32, num_classes=num_classes)
