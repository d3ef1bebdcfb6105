"""Float pixels to ``uint8``, with one rounding for every caller (videos written, metrics' uint8 inputs, the
synthetic world's renders)."""

from __future__ import annotations

import numpy as np
import torch


def to_uint8(x: torch.Tensor | np.ndarray, low: float = -1.0, in_place: bool = False) -> torch.Tensor | np.ndarray:
    """Values in ``[low, 1]`` -> ``uint8`` ``floor((x - low) * 255 / (1 - low) + 0.5)``, clipped to [0, 255].

    Any layout; a numpy array gives a numpy array (float32 arithmetic either way, so both give the same bytes).
    ``in_place`` uses a float32 ``x`` as scratch space (its values are lost) instead of allocating a copy.
    """
    is_array = isinstance(x, np.ndarray)
    t = torch.from_numpy(x) if is_array else x.detach()
    if t.dtype != torch.float32:
        t, in_place = t.float(), True  # a new tensor: free to work in
    scale = 255.0 / (1.0 - low)
    if in_place:
        if low:
            t.sub_(low)
        y = t.mul_(scale).add_(0.5).clamp_(0.0, 255.0)
    else:
        y = ((t - low) * scale if low else t * scale).add_(0.5).clamp_(0.0, 255.0)
    out = y.to(torch.uint8)  # truncation of non-negative values is the floor
    return out.numpy() if is_array else out
