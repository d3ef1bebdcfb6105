"""``SyntheticTryOnDataset``: the world as a map-style torch Dataset, generated on the fly (no disk)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

from ..contract import validate_sample
from ..manifest import sample_from_arrays
from .families import family_mix, mixed_clip
from .spec import ClipSpec
from .splits import check_split
from .world import generate_clip


class SyntheticTryOnDataset(Dataset):
    """``num_clips`` clips of ``split``; item ``i`` is clip ``(split, i, seed)``, identical on every call and machine.

    Samples follow the batch contract (``itryon.data.contract``) plus ``counterfactual_mask`` ``[1, T, H, W]``:
    where the counterfactual differs from the video by design (for interaction clips the same as
    ``interaction_mask``; for passive clips, where the false interaction would have shown). Items convert
    exactly as :class:`itryon.data.manifest.InteractiveManifestDataset` reads a written split.

    ``num_frames`` ... ``garment_size`` make the clips' :class:`.ClipSpec`. ``families`` (a family name or a list, see
    :mod:`.families`) serves benchmark-family clips instead: with
    a list the families take turns (item ``i`` is clip ``i // len(families)`` of family
    ``families[i % len(families)]``; ``"standard"`` names the standard clips). None: the standard clips.

    ``cache=True`` keeps each generated clip's uint8 arrays in memory (about 1 MB per clip at 17 x 48 x 64), so
    that later epochs only convert them (about 7x faster than generating); each data-loader worker holds its own.
    Items are the same with and without it.
    """

    def __init__(
        self,
        split: str = "train",
        num_clips: int = 64,
        seed: int = 0,
        num_frames: int = 17,
        height: int = 48,
        width: int = 64,
        fps: float = 8.0,
        passive_fraction: float = 0.25,
        garment_size: tuple[int, int] | None = None,
        validate: bool = True,
        families: str | Sequence[str] | None = None,
        cache: bool = False,
    ):
        check_split(split)
        self.families = family_mix(families)
        if num_clips < 0:
            raise ValueError(f"num_clips must be >= 0, got {num_clips}")
        self.split = split
        self.num_clips = num_clips
        self.seed = seed
        self.spec = ClipSpec(num_frames, height, width, fps, passive_fraction, garment_size)
        self.validate = validate
        self.cache: dict[int, dict[str, Any]] | None = {} if cache else None

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips of split {self.split!r}")
        clip = self.cache.get(index) if self.cache is not None else None
        if clip is None:
            family, local = (None, index) if self.families is None else mixed_clip(index, self.families)
            clip = generate_clip(self.split, local, self.seed, self.spec, family=family)
            if self.cache is not None:
                self.cache[index] = clip
        arrays = {k: v for k, v in clip.items() if k not in ("caption", "actions", "meta")}
        sample = sample_from_arrays(arrays, clip["caption"], clip["actions"], clip["meta"])
        if self.validate:
            validate_sample(sample)
        return sample
