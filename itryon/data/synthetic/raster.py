"""Vectorised 2D rasterisation on coordinate grids: signed distances, coverage and compositing.

Everything works on broadcastable float32 arrays (usually ``(T, H, W)`` body coordinates and
``(T, 1, 1)`` per-frame parameters) with only +, -, *, /, sqrt, floor, min and max per pixel: these are
exactly rounded in IEEE arithmetic, so renders are byte-identical across machines and SIMD paths.
Distances are in body units (1.0 = frame height at scale 1); :func:`coverage` turns them into
anti-aliased pixel coverage given the number of pixels per unit.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in frame units: x in about [-W/2H, W/2H] (0 = centre column), y in [0, 1] (top to bottom)."""
    x = (np.arange(width, dtype=np.float64) + 0.5 - width / 2.0) / height
    y = (np.arange(height, dtype=np.float64) + 0.5) / height
    px, py = np.meshgrid(x, y)  # (H, W)
    return px.astype(F32), py.astype(F32)


def coverage(sdf: np.ndarray, pixels_per_unit: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of the shape ``sdf < 0`` (a one-pixel-wide ramp across the edge)."""
    return np.clip(F32(0.5) - sdf * F32(pixels_per_unit), F32(0.0), F32(1.0))


def ellipse_sdf(x: np.ndarray, y: np.ndarray, cx, cy, rx, ry) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse (exact for circles, good near the edge)."""
    qx = (x - cx) / rx
    qy = (y - cy) / ry
    return (np.sqrt(qx * qx + qy * qy) - F32(1.0)) * np.minimum(rx, ry)


def capsule(x: np.ndarray, y: np.ndarray, ax, ay, bx, by) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance to the segment a-b, the clamped position ``h`` in [0, 1] along it and the signed offset across it.

    ``a``/``b`` may be per-frame arrays ``(T, 1, 1)``; the offset across is positive to the left of a->b.
    """
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy + F32(1e-12)
    pax, pay = x - ax, y - ay
    h = np.clip((pax * dx + pay * dy) / length2, F32(0.0), F32(1.0))
    ex, ey = pax - dx * h, pay - dy * h
    across = (pax * dy - pay * dx) / np.sqrt(length2)
    return np.sqrt(ex * ex + ey * ey), h, across


def bump(q: np.ndarray) -> np.ndarray:
    """Compactly supported bump ``(1 - q^2)^2`` for |q| < 1, exactly 0 outside."""
    r = np.maximum(F32(1.0) - q * q, F32(0.0))
    return r * r


def smoothstep(t: np.ndarray) -> np.ndarray:
    """``3t^2 - 2t^3`` of ``t`` clipped to [0, 1]."""
    t = np.clip(t, F32(0.0), F32(1.0))
    return t * t * (F32(3.0) - F32(2.0) * t)


def over(image: np.ndarray, colour, alpha: np.ndarray) -> np.ndarray:
    """Composite ``colour`` (``(3,)`` or ``(3, ...)``) over ``image`` (``(3, ...)``, channels first) with ``alpha``, in place."""
    for c in range(3):
        image[c] += alpha * (F32(colour[c]) - image[c] if np.ndim(colour) == 1 else colour[c] - image[c])
    return image


def splat(image: np.ndarray, points: np.ndarray, colour, offsets: np.ndarray) -> None:
    """Set pixels of ``image`` ``(3, T, H, W)`` under ``points`` ``(T, N, 2)`` (pixel x, y) and their ``offsets``.

    Used for thin lines and dots (the pose skeleton), where a full-grid distance field would cost more.
    """
    _, t_count, height, width = image.shape
    ix = np.floor(points[..., 0])[..., None].astype(np.int64) + offsets[:, 0]  # (T, N, O)
    iy = np.floor(points[..., 1])[..., None].astype(np.int64) + offsets[:, 1]
    frame = np.broadcast_to(np.arange(t_count)[:, None, None], ix.shape)
    inside = (ix >= 0) & (ix < width) & (iy >= 0) & (iy < height)
    flat = (frame[inside] * height + iy[inside]) * width + ix[inside]
    for c in range(3):
        image[c].reshape(-1)[flat] = colour[c]


def disk_offsets(radius: float) -> np.ndarray:
    """Integer pixel offsets ``(O, 2)`` inside a disk of ``radius`` pixels (at least the centre)."""
    r = int(np.ceil(radius))
    oy, ox = np.mgrid[-r : r + 1, -r : r + 1]
    keep = ox * ox + oy * oy <= radius * radius
    keep[r, r] = True
    return np.stack([ox[keep], oy[keep]], axis=1)


class Layer:
    """A premultiplied RGBA layer, RGB ``(3, ...)`` (channels first) + alpha ``(...)``, painted in order back to front."""

    def __init__(self, shape: tuple[int, ...]):
        self.rgb = np.zeros((3, *shape), dtype=F32)
        self.alpha = np.zeros(shape, dtype=F32)

    def paint(self, colour, alpha: np.ndarray) -> None:
        """Paint ``colour`` (``(3,)`` or ``(3, ...)``) with coverage ``alpha`` over what the layer holds."""
        over(self.rgb, colour, alpha)
        self.alpha += alpha * (F32(1.0) - self.alpha)

    def composite(self, image: np.ndarray) -> np.ndarray:
        """``image`` (``(3, ...)``) with this layer over it (a new array)."""
        return image * (F32(1.0) - self.alpha) + self.rgb


class Window:
    """Per-frame pixel windows of one common size inside a ``(T, H, W)`` frame stack.

    Small parts (hands, arms, head) are rendered on their windows instead of the whole frame; values move
    between windows and full arrays by flat index (windows lie inside the frame, so indices are unique).
    """

    def __init__(self, x_lo: np.ndarray, x_hi: np.ndarray, y_lo: np.ndarray, y_hi: np.ndarray, height: int, width: int):
        """Windows covering pixel ranges ``[x_lo, x_hi] x [y_lo, y_hi]`` per frame (float arrays ``(T,)``)."""
        w = int(min(width, np.ceil(np.max(x_hi - x_lo)) + 2))
        h = int(min(height, np.ceil(np.max(y_hi - y_lo)) + 2))
        x0 = np.clip(np.floor(x_lo).astype(np.int64), 0, width - w)  # shifting into the frame keeps the visible part
        y0 = np.clip(np.floor(y_lo).astype(np.int64), 0, height - h)
        t_count = len(x0)
        cols = x0[:, None, None] + np.arange(w)[None, None, :]  # (T, 1, w)
        rows = y0[:, None, None] + np.arange(h)[None, :, None]  # (T, h, 1)
        self.flat = (np.arange(t_count)[:, None, None] * height + rows) * width + cols  # (T, h, w)
        self.px = ((cols + 0.5 - width / 2.0) / height).astype(F32)
        self.py = ((rows + 0.5) / height).astype(F32)
        self.shape = self.flat.shape

    def gather(self, full: np.ndarray) -> np.ndarray:
        """Window values of ``full`` ``(T, H, W)`` or ``(C, T, H, W)``."""
        if full.ndim == 3:
            return full.reshape(-1)[self.flat]
        return np.stack([channel.reshape(-1)[self.flat] for channel in full])

    def scatter(self, full: np.ndarray, values: np.ndarray) -> None:
        """Write window ``values`` back into ``full`` (same layouts as :meth:`gather`)."""
        if full.ndim == 3:
            full.reshape(-1)[self.flat] = values
            return
        for channel, v in zip(full, values):
            channel.reshape(-1)[self.flat] = v
