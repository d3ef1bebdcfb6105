"""Local weight files for the metric networks: where they are looked up and how they are read.

Nothing is downloaded. A weights folder is given explicitly or through ``ITRYON_WEIGHTS``; a missing
file is a :class:`MissingWeightsError` naming the file, the folder searched and where the file is
published (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch.nn.modules.batchnorm import _NormBase

WEIGHTS_ENV = "ITRYON_WEIGHTS"

# file name -> public origin, shown in the missing-file error
KNOWN_FILES: dict[str, str] = {
    "i3d.pt": "I3D (Inception-v1 inflated, Kinetics-400) in the piergiaj/pytorch-i3d layout, as shipped with the VFID scripts (e.g. Hugging Face zhengchong/VFID)",
    "resnext-101.pth": "3D-ResNeXt-101 (cardinality 32, shortcut B, Kinetics-400) from kenshohara/3D-ResNets-PyTorch ('resnext-101-kinetics.pth'; Hugging Face zhengchong/VFID ships it as resnext-101.pth)",
    "i3d_torchscript.pt": "the TorchScript Kinetics-400 I3D detector of StyleGAN-V's FVD (universome/stylegan-v, i3d_torchscript.pt)",
    "alexnet-owt-7be5be79.pth": "torchvision AlexNet ImageNet weights (LPIPS 'alex' backbone)",
    "vgg16-397923af.pth": "torchvision VGG16 ImageNet weights (LPIPS 'vgg' backbone)",
    "squeezenet1_1-b8a52dc0.pth": "torchvision SqueezeNet 1.1 ImageNet weights (LPIPS 'squeeze' backbone)",
}


class MissingWeightsError(FileNotFoundError):
    """A metric network's weight file is not in the weights folder."""


def weights_folder(weights_dir: str | os.PathLike | None = None) -> Path:
    """The folder searched for weight files: ``weights_dir`` if given, else ``$ITRYON_WEIGHTS``."""
    if weights_dir is not None:
        return Path(weights_dir).expanduser()
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    raise MissingWeightsError(
        f"no weights folder: pass weights_dir (config key 'weights_dir', CLI --weights) or set ${WEIGHTS_ENV} "
        "to the folder holding the metric weight files"
    )


def find_weights(filename: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Path of ``filename`` inside the weights folder; :class:`MissingWeightsError` if it is not there."""
    folder = weights_folder(weights_dir)
    path = folder / filename
    if not path.is_file():
        origin = KNOWN_FILES.get(filename)
        hint = f"; it is {origin}" if origin else ""
        raise MissingWeightsError(f"weight file '{filename}' not found in '{folder}'{hint}")
    return path


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (``weights_only=True``).

    A ``{"state_dict": ...}`` wrapper (3D-ResNets checkpoints) is unwrapped and a DataParallel
    ``module.`` prefix is removed.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        from itryon.io_utils import torch_load

        state = torch_load(path, "state dict")
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state dict (mapping of names to tensors), found {type(state).__name__}")
    prefix = "module."
    if state and all(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)


def _norm_counters(module: torch.nn.Module) -> set[str]:
    """State-dict names of the batch-norm ``num_batches_tracked`` counters of ``module``."""
    return {
        f"{name}.num_batches_tracked" if name else "num_batches_tracked"
        for name, m in module.named_modules()
        if isinstance(m, _NormBase) and m.track_running_stats
    }


def load_into(module: torch.nn.Module, path: str | os.PathLike, ignore: tuple[str, ...] = ()) -> None:
    """Load the state dict at ``path`` into ``module`` strictly; keys starting with ``ignore`` may be absent
    or extra (e.g. a classifier head the feature network does not use).

    Batch-norm ``num_batches_tracked`` counters may be absent (checkpoints from before torch 0.4.1 have
    none): as torch's strict load does for such checkpoints, they start at 0. They only matter for
    training with ``momentum=None``, never for the features.
    """
    state = load_state_dict(path)
    state = {k: v for k, v in state.items() if not k.startswith(ignore)} if ignore else state
    expected = {k: v for k, v in module.state_dict().items() if not (ignore and k.startswith(ignore))}
    for key in _norm_counters(module) & set(expected) - set(state):
        state[key] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)} keys)")
        if unexpected:
            details.append(
                f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} ({len(unexpected)} keys)"
            )
        if wrong:
            k = wrong[0]
            details.append(
                f"shape mismatch for {len(wrong)} keys, e.g. '{k}': expected {list(expected[k].shape)}, found {list(state[k].shape)}"
            )
        raise ValueError(f"{path}: does not match {type(module).__name__}: " + "; ".join(details))
    module.load_state_dict(state, strict=not ignore)
