"""The synthetic interactive try-on world (docs/architecture.md, "The synthetic world").

Procedural clips of a person wearing a textured garment and acting on it with their hands (lift the hem,
pull the zipper down, stretch the fabric, tug the collar), with passive look-alike gestures, a 3D hand
prior, captions with time spans and a counterfactual video, deterministic from (split, index, seed).

- :func:`generate_clip` renders one clip of a :class:`ClipSpec` as uint8 arrays (shared by the Dataset, the CLI and the benchmark);
- :class:`SyntheticTryOnDataset` yields contract samples on the fly;
- :func:`write_split` writes a split in the interactive manifest format (``itryon synth``).
"""

import importlib
from typing import Any

# name -> submodule; imported on first use, so that light importers (the CLI's argument defaults) stay fast
_EXPORTS = {
    "ACTION_KINDS": ".actions",
    "ClipSpec": ".spec",
    "GARMENT_CLASSES": ".garments",
    "HELD_OUT_COMBINATION": ".splits",
    "SPLITS": ".splits",
    "SyntheticTryOnDataset": ".dataset",
    "contact_sheet": ".preview",
    "generate_clip": ".world",
    "write_split": ".export",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
