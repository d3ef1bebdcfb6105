"""DensePose parsing computed elsewhere (detectron2's DensePose writes IUV images) read as a segmenter.

``DIR/<clip>/`` holds one IUV image per frame (numbered names): channel 0 is the body part index I (0 = background,
1..24 DensePose's parts), channels 1 and 2 the surface coordinates (unused here). The parts become LIP labels:
torso -> upper clothes, upper and lower arms -> arms, hands -> gloves, legs -> legs, feet -> shoes, head -> face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from itryon.data.video_io import read_video

from .estimators import EstimatorError
from .types import LIP, Segmentation

# DensePose part index (1..24) -> LIP label; DensePose's "right"/"left" are the person's
PART_TO_LIP = np.zeros(256, dtype=np.uint8)
for parts, name in (
    ((1, 2), "upper_clothes"),
    ((3,), "glove"),
    ((4,), "glove"),
    ((5,), "right_shoe"),
    ((6,), "left_shoe"),
    ((7, 9, 11, 13), "right_leg"),
    ((8, 10, 12, 14), "left_leg"),
    ((15, 17, 19, 21), "left_arm"),
    ((16, 18, 20, 22), "right_arm"),
    ((23, 24), "face"),
):
    PART_TO_LIP[list(parts)] = LIP[name]


class FileDensePose:
    """IUV frames from ``DIR/<clip>/`` (see the module docstring) as person segmentation with LIP parts."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise EstimatorError(f"DensePose folder {self.folder} does not exist")
        self.clip: str | None = None

    def for_clip(self, clip: str) -> FileDensePose:
        self.clip = clip
        return self

    def segment(self, frames: np.ndarray) -> Segmentation:
        path = self.folder / str(self.clip)
        if not path.is_dir():
            raise EstimatorError(f"DensePose IUV folder {path} does not exist (one folder of IUV images per clip)")
        iuv = read_video(path).numpy()  # (T, h, w, C)
        if len(iuv) != len(frames):
            raise EstimatorError(f"{path}: {len(iuv)} IUV frames for a clip of {len(frames)}")
        index = iuv[..., 0]
        if index.shape[1:] != frames.shape[1:3]:
            index = np.stack(
                [np.asarray(Image.fromarray(f).resize(frames.shape[2:0:-1], Image.NEAREST)) for f in index]
            )
        parts = PART_TO_LIP[index]
        return Segmentation(((index > 0) & (index <= 24)).astype(np.float32), parts)
