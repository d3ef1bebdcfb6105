"""Precision of a component given by name in a config (``dtype: bfloat16``) or as a ``torch.dtype`` in code."""

from __future__ import annotations

from typing import Literal

import torch

# what a config may write for a precision (configs cannot hold a torch.dtype; code may pass one)
DTypeName = Literal["float32", "fp32", "bfloat16", "bf16", "float16", "fp16"]

# the names a config may write, and the dtype each means
DTYPE_NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def as_dtype(value: str | torch.dtype, key: str = "dtype") -> torch.dtype:
    """``value`` as a ``torch.dtype``; a name must be one of :data:`DTYPE_NAMES` (``torch.`` prefix allowed)."""
    if isinstance(value, torch.dtype):
        return value
    name = str(value).removeprefix("torch.")
    if name not in DTYPE_NAMES:
        raise ValueError(f"{key} must be one of {sorted(DTYPE_NAMES)} (or a torch.dtype), got {value!r}")
    return DTYPE_NAMES[name]
