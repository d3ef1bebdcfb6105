"""Model-free estimators: a colour-key person segmenter for plain studio backgrounds, and the in-shop garment's mask."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .types import Segmentation


def _border_colour(image: np.ndarray, width: int) -> np.ndarray:
    """Median colour ``(3,)`` of the ``width``-pixel border strip of ``image`` ``(H, W, 3)``."""
    strip = np.concatenate(
        [
            image[:width].reshape(-1, 3),
            image[-width:].reshape(-1, 3),
            image[:, :width].reshape(-1, 3),
            image[:, -width:].reshape(-1, 3),
        ]
    )
    return np.median(strip, axis=0)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a bool mask (all False stays all False)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
    return labels == 1 + int(np.argmax(sizes))


def foreground(
    image: np.ndarray, threshold: float = 30.0, border: int = 2
) -> np.ndarray:  # a plain backdrop needs no model
    """Pixels of ``image`` ``(H, W, 3)`` uint8 farther than ``threshold`` (RGB distance) from the border's median
    colour, as one filled component with a smoothed outline (``(H, W)`` bool)."""
    background = _border_colour(image.astype(np.float32), max(1, border))
    far = np.linalg.norm(image.astype(np.float32) - background, axis=-1) > threshold
    smooth = max(1, min(image.shape[:2]) // 128)
    far = ndimage.binary_opening(far, structure=np.ones((3, 3), dtype=bool), iterations=smooth)
    return ndimage.binary_fill_holes(largest_component(far))


def garment_mask(image: np.ndarray, alpha: np.ndarray | None = None, threshold: float = 30.0) -> np.ndarray:
    """The garment's silhouette in an in-shop image ``(H, W, 3)`` uint8 on a plain (usually white) background:
    its alpha channel when it has one, else :func:`foreground`."""
    if alpha is not None and (alpha < 128).any():
        return ndimage.binary_fill_holes(largest_component(alpha >= 128))
    return foreground(image, threshold)


class ColourKeySegmenter:
    """The person as everything that differs from the frame border's colour (studio shots on a plain backdrop)."""

    def __init__(self, threshold: float = 30.0) -> None:
        self.threshold = threshold

    def segment(self, frames: np.ndarray) -> Segmentation:
        return Segmentation(np.stack([foreground(f, self.threshold) for f in frames]).astype(np.float32))
