"""The ``lpips`` package's network with its backbone read from the local weights folder.

``lpips`` ships the calibrated linear heads but takes the AlexNet / VGG16 / SqueezeNet-1.1 backbones
from torchvision's download cache; here the backbone is built randomly initialised and then loaded
from the torchvision checkpoint file in the weights folder (``features.<i>.*`` keys).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

import lpips
import torch

from itryon.metrics.weights import find_weights, load_state_dict

BACKBONE_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


def build_lpips(
    net: str = "alex",
    weights_dir: str | os.PathLike | None = None,
    spatial: bool = False,
    backbone_file: str | None = None,
) -> lpips.LPIPS:
    """``lpips.LPIPS`` (v0.1, calibrated heads) whose ``net`` backbone comes from the weights folder.

    ``spatial=True`` returns per-pixel distance maps (used for masked variants).
    """
    if net not in BACKBONE_FILES:
        raise ValueError(f"unknown LPIPS backbone {net!r}; available: {sorted(BACKBONE_FILES)}")
    path = find_weights(backbone_file or BACKBONE_FILES[net], weights_dir)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation inside lpips
        model = lpips.LPIPS(net=net, pnet_rand=True, spatial=spatial, verbose=False)
    load_backbone(model, load_state_dict(path), source=str(path))
    return model.eval().requires_grad_(False)


def load_backbone(model: lpips.LPIPS, torchvision_state: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Copy torchvision ``features.<i>.<param>`` tensors into the LPIPS ``net.slice<k>.<i>.<param>`` parameters."""
    own = model.net.state_dict()
    mapped = {}
    for name in own:
        _, index_param = name.split(".", 1)  # 'slice2.3.weight' -> '3.weight'
        key = f"features.{index_param}"
        if key not in torchvision_state:
            raise ValueError(f"{source}: no '{key}' for LPIPS backbone parameter 'net.{name}' ({model.pnet_type})")
        if torchvision_state[key].shape != own[name].shape:
            raise ValueError(
                f"{source}: '{key}' has shape {list(torchvision_state[key].shape)}, LPIPS '{model.pnet_type}' expects {list(own[name].shape)}"
            )
        mapped[name] = torchvision_state[key]
    model.net.load_state_dict(mapped)
