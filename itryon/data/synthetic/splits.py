"""Train / val / test partitions of the world: disjoint garment palettes, textures and logo letters.

Every garment colour comes from a hue sector and every texture is a numbered variant of a pattern;
sectors, variants and letters are dealt to the splits round-robin (4 : 1 : 1), so a test garment never
shares a colour family, a texture or a letter with a training garment. The test split also holds out
one (action, garment class) combination that train and val never show.
"""

from __future__ import annotations

SPLITS = ("train", "val", "test")
HUE_SECTORS = 24  # 15 degrees each
TEXTURE_VARIANTS = 24  # per pattern
GLYPH_LETTERS = "ACEFHIKLMNOPSTUVXZ"
HELD_OUT_COMBINATION = ("lift_hem", "jacket")  # (action kind, garment class) seen only in test

_DEAL = ("train", "train", "val", "train", "train", "test")


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    return split


def _dealt(count: int, split: str) -> tuple[int, ...]:
    check_split(split)
    return tuple(i for i in range(count) if _DEAL[i % len(_DEAL)] == split)


def hue_sectors(split: str) -> tuple[int, ...]:
    """Hue sectors (0..23) a split's garment colours are drawn from."""
    return _dealt(HUE_SECTORS, split)


def texture_variants(split: str) -> tuple[int, ...]:
    """Texture variant numbers (0..23, per pattern) a split's garments use."""
    return _dealt(TEXTURE_VARIANTS, split)


def glyph_letters(split: str) -> str:
    """Letters a split's logo garments may carry."""
    return "".join(GLYPH_LETTERS[i] for i in _dealt(len(GLYPH_LETTERS), split))


def combination_allowed(split: str, action: str, garment_class: str) -> bool:
    """False for the held-out (action, class) combination outside the test split."""
    return split == "test" or (action, garment_class) != HELD_OUT_COMBINATION
