"""``ClipSpec``: the size and timing every clip of a split shares, passed through the world as one object."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClipSpec:
    """``num_frames`` frames of ``height x width`` pixels at ``fps``; ``passive_fraction`` of the standard clips show
    passive gestures; ``garment_size`` ``(Hg, Wg)`` is the in-shop image's size (None: the video's)."""

    num_frames: int = 17
    height: int = 48
    width: int = 64
    fps: float = 8.0
    passive_fraction: float = 0.25
    garment_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.height < 8 or self.width < 8:
            raise ValueError(
                f"a clip needs num_frames >= 1 and height, width >= 8; got {self.num_frames} frames of {self.height}x{self.width}"
            )
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if not 0.0 <= self.passive_fraction <= 1.0:
            raise ValueError(f"passive_fraction must be in [0, 1], got {self.passive_fraction}")
        if self.garment_size is not None:
            object.__setattr__(self, "garment_size", tuple(int(s) for s in self.garment_size))
