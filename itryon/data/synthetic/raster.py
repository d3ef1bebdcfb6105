"""Vectorised 2D rasterisation on coordinate grids: signed distances, coverage and compositing.

Everything works on broadcastable float32 arrays (usually ``(T, H, W)`` body coordinates and
``(T, 1, 1)`` per-frame parameters) with only +, -, *, /, sqrt, floor, min and max per pixel: these are
exactly rounded in IEEE arithmetic, so renders are byte-identical across machines and SIMD paths.
Distances are in body units (1.0 = frame height at scale 1); :func:`coverage` turns them into
anti-aliased pixel coverage given the number of pixels per unit.
"""

from __future__ import annotations

import functools
import math

import numpy as np

F32 = np.float32


@functools.lru_cache(maxsize=16)
def pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in frame units: x in about [-W/2H, W/2H] (0 = centre column), y in [0, 1] (top to bottom).

    Cached per size and read-only: every clip of a size shares one grid and takes boxes of it as views.
    """
    x = ((np.arange(width, dtype=np.float64) + 0.5 - width / 2.0) / height).astype(F32)
    y = ((np.arange(height, dtype=np.float64) + 0.5) / height).astype(F32)
    px, py = (
        np.broadcast_to(x[None, :], (height, width)).copy(),
        np.broadcast_to(y[:, None], (height, width)).copy(),
    )  # (H, W)
    px.flags.writeable = py.flags.writeable = False
    return px, py


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
    colour = np.asarray(colour, dtype=F32)
    if colour.ndim == 1:
        colour = colour.reshape(3, *([1] * (image.ndim - 1)))
    work = np.ascontiguousarray(image)  # on a box view, copying in and out beats strided arithmetic
    step = np.subtract(colour, work)  # alpha * (colour - image) with one temporary
    step *= alpha
    work += step
    if work is not image:
        image[...] = work
    return image


def stamp(labels: np.ndarray, x: np.ndarray, y: np.ndarray, label, offsets: np.ndarray) -> None:
    """Raise ``labels`` (contiguous ``(T, H, W)`` uint8) to ``label`` under the points ``(x, y)`` ``(T, ...)`` (pixel coordinates) and their ``offsets``.

    ``label`` broadcasts against ``x``. Where marks overlap the highest label wins, so labels in drawing
    order reproduce painting the strokes one after the other. Used for thin lines and dots (the pose
    skeleton), where a full-grid distance field would cost more.
    """
    t_count, height, width = labels.shape
    ix, iy = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    row0 = np.arange(t_count).reshape(-1, *([1] * (ix.ndim - 1))) * height  # (T, 1, ...)
    value = np.broadcast_to(np.asarray(label, dtype=labels.dtype), ix.shape)
    flat = labels.reshape(-1)
    for ox, oy in offsets.tolist():
        cx, cy = ix + ox, iy + oy
        inside = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
        np.maximum.at(
            flat, ((row0 + cy) * width + cx)[inside], value[inside]
        )  # unbuffered: repeated pixels keep the maximum


@functools.lru_cache(maxsize=16)
def disk_offsets(radius: float) -> np.ndarray:
    """Integer pixel offsets ``(O, 2)`` inside a disk of ``radius`` pixels (at least the centre)."""
    r = int(np.ceil(radius))
    oy, ox = np.mgrid[-r : r + 1, -r : r + 1]
    keep = ox * ox + oy * oy <= radius * radius
    keep[r, r] = True
    offsets = np.stack([ox[keep], oy[keep]], axis=1)
    offsets.flags.writeable = False  # cached and shared
    return offsets


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
        """``image`` (``(3, ...)``) with this layer over it, in place."""
        work = np.ascontiguousarray(image)
        work *= F32(1.0) - self.alpha
        work += self.rgb
        if work is not image:
            image[...] = work
        return image

    def view(self, box: Box) -> Layer:
        """The part of a frame-sized layer inside ``box``, sharing its memory (painting it paints the layer)."""
        part = Layer.__new__(Layer)
        part.rgb, part.alpha = box.of(self.rgb), box.of(self.alpha)
        return part

    def take(self, box: Box) -> Layer:
        """A contiguous copy of the part inside ``box``: paint it, then :meth:`put` it back (faster than painting a view)."""
        part = Layer.__new__(Layer)
        part.rgb, part.alpha = box.of(self.rgb).copy(), box.of(self.alpha).copy()
        return part

    def put(self, box: Box, part: Layer) -> None:
        """Write a part taken with :meth:`take` back."""
        box.of(self.rgb)[...] = part.rgb
        box.of(self.alpha)[...] = part.alpha


class Box:
    """One pixel rectangle, rows ``[y0, y1)`` x columns ``[x0, x1)``, shared by every frame of a ``(T, H, W)`` stack.

    A part (an arm segment, a hand, the torso) is rendered on the box of every pixel it can reach during the
    clip and written through views of the full arrays, so nothing is gathered or scattered.
    """

    def __init__(self, y0: int, y1: int, x0: int, x1: int, height: int, width: int):
        self.y0, self.y1 = min(max(int(y0), 0), height), min(max(int(y1), 0), height)
        self.x0, self.x1 = min(max(int(x0), 0), width), min(max(int(x1), 0), width)
        self.y1, self.x1 = max(self.y1, self.y0), max(self.x1, self.x0)
        self.height, self.width = height, width
        self.index = (slice(self.y0, self.y1), slice(self.x0, self.x1))
        grid_x, grid_y = pixel_grid(height, width)
        self.px, self.py = grid_x[self.index], grid_y[self.index]  # (h, w) frame units

    @classmethod
    def around(cls, points: np.ndarray, margin: float, height: int, width: int) -> Box:
        """The box of all pixels within ``margin`` pixels of ``points`` ``(T, N, 2)`` (pixel x, y) in any frame."""
        x, y = points[..., 0], points[..., 1]
        return cls(  # the pixel holding coordinate c is floor(c); + 1 more for the exclusive end and + 1 of slack
            math.floor(float(y.min()) - margin),
            math.floor(float(y.max()) + margin) + 2,
            math.floor(float(x.min()) - margin),
            math.floor(float(x.max()) + margin) + 2,
            height,
            width,
        )

    def union(self, other: Box) -> Box:
        """The smallest box holding both (an empty box adds nothing)."""
        if self.empty:
            return other
        if other.empty:
            return self
        return Box(
            min(self.y0, other.y0),
            max(self.y1, other.y1),
            min(self.x0, other.x0),
            max(self.x1, other.x1),
            self.height,
            self.width,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def empty(self) -> bool:
        return self.y1 == self.y0 or self.x1 == self.x0

    def of(self, full: np.ndarray) -> np.ndarray:
        """The view of ``full`` ``(..., H, W)`` inside the box ``(..., h, w)``."""
        return full[(..., *self.index)]

    def within(self, outer: Box) -> tuple[slice, slice]:
        """This box's index relative to ``outer`` (which must contain it)."""
        return slice(self.y0 - outer.y0, self.y1 - outer.y0), slice(self.x0 - outer.x0, self.x1 - outer.x0)
