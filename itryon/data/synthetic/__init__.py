"""The synthetic interactive try-on world (DESIGN.md section 5).

Procedural clips of a person wearing a textured garment and acting on it with their hands (lift the hem,
pull the zipper down, stretch the fabric, tug the collar), with passive look-alike gestures, a 3D hand
prior, captions with time spans and a counterfactual video, deterministic from (split, index, seed).

- :func:`generate_clip` renders one clip as uint8 arrays (shared by the Dataset, the CLI and the benchmark);
- :class:`SyntheticTryOnDataset` yields contract samples on the fly;
- :func:`write_split` writes a split in the interactive manifest format (``itryon synth``).
"""

from .actions import ACTION_KINDS
from .dataset import SyntheticTryOnDataset
from .export import write_split
from .garments import GARMENT_CLASSES
from .preview import contact_sheet
from .splits import HELD_OUT_COMBINATION, SPLITS
from .world import generate_clip

__all__ = [
    "ACTION_KINDS",
    "GARMENT_CLASSES",
    "HELD_OUT_COMBINATION",
    "SPLITS",
    "SyntheticTryOnDataset",
    "contact_sheet",
    "generate_clip",
    "write_split",
]
