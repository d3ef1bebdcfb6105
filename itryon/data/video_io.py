"""Video files in and out: MP4 through PyAV, or folders of PNG frames (lossless, used for masks).

Frames travel as ``uint8 [T, H, W, C]`` (C = 3 for RGB, 1 for masks); models use ``float [C, T, H, W]``
in [-1, 1]. :func:`to_float` and :func:`to_frames` convert between the two.

A frame folder is read in the order of the number at the end of each file name (``7.png`` before ``10.png``,
padded or not); names without a number, with different prefixes, with a repeated number or with a gap in
the numbering are errors naming the folder. Palette and 1-bit frames are converted to RGB and 8-bit grey.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from itryon.data.pixels import to_uint8
from itryon.io_utils import atomic_path, replace_dir, temp_dir_for

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


class VideoIOError(RuntimeError):
    """A video file or frame folder cannot be read or written."""


def is_video_path(path: str | Path) -> bool:
    """True for an existing video file or frame folder."""
    p = Path(path)
    return (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES) or (p.is_dir() and bool(_frame_files(p)))


_NUMBERED = re.compile(r"(.*?)(\d+)")


def _frame_files(folder: Path) -> list[Path]:
    """The frames of ``folder`` in the order of their numbers; [] when it holds no frame files."""
    files = [f for f in folder.iterdir() if f.suffix.lower() in FRAME_SUFFIXES and not f.name.startswith(".")]
    if not files:
        return []
    by_prefix: dict[str, list[tuple[int, Path]]] = {}
    for f in files:
        m = _NUMBERED.fullmatch(f.stem)
        if m is None:
            raise VideoIOError(
                f"{folder}: frame {f.name!r} has no frame number in its name; name frames 000000.png, 000001.png, ..."
            )
        by_prefix.setdefault(m.group(1), []).append((int(m.group(2)), f))
    if len(by_prefix) > 1:
        raise VideoIOError(
            f"{folder}: frame names have different prefixes {sorted(by_prefix)}; one video per folder, frames named <prefix><number>"
        )
    (numbered,) = by_prefix.values()
    numbered.sort()
    numbers = [n for n, _ in numbered]
    for (a, fa), (b, fb) in zip(numbered, numbered[1:]):
        if a == b:
            raise VideoIOError(f"{folder}: {fa.name!r} and {fb.name!r} both hold frame {a}")
        if b != a + 1:
            raise VideoIOError(
                f"{folder}: frame numbers jump from {a} ({fa.name}) to {b} ({fb.name}): frame {a + 1} is missing (frames {numbers[0]}..{numbers[-1]} expected without gaps)"
            )
    return [f for _, f in numbered]


def _frame_array(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
        elif im.mode == "1" or im.mode.startswith("I"):
            im = im.convert("L")
        return np.asarray(im)


def read_video(path: str | Path) -> torch.Tensor:
    """Read an MP4 (or other container PyAV reads) or a folder of frames as ``uint8 [T, H, W, C]`` RGB.

    Frame folders of single-channel images give ``C = 1``.
    """
    p = Path(path)
    if p.is_dir():
        files = _frame_files(p)
        if not files:
            raise VideoIOError(f"{p}: frame folder holds no {'/'.join(FRAME_SUFFIXES)} files")
        frames = [_frame_array(f) for f in files]
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise VideoIOError(f"{p}: frames have different shapes {sorted(shapes)}")
        arr = np.stack(frames)
        if arr.ndim == 3:
            arr = arr[..., None]
        return torch.from_numpy(arr[..., :3].copy() if arr.shape[-1] == 4 else arr)
    if not p.is_file():
        raise VideoIOError(f"{p}: no such video file or frame folder")
    try:
        with av.open(str(p)) as container:
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except av.error.FFmpegError as exc:
        raise VideoIOError(f"{p}: cannot decode video ({exc})") from exc
    if not frames:
        raise VideoIOError(f"{p}: video holds no frames")
    return torch.from_numpy(np.stack(frames))


def video_info(path: str | Path) -> dict:
    """``{"frames", "height", "width", "fps"}`` of a video file or frame folder (fps is None for folders)."""
    p = Path(path)
    if p.is_dir():
        files = _frame_files(p)
        if not files:
            raise VideoIOError(f"{p}: frame folder holds no frames")
        with Image.open(files[0]) as im:
            w, h = im.size
        return {"frames": len(files), "height": h, "width": w, "fps": None}
    if not p.is_file():
        raise VideoIOError(f"{p}: no such video file or frame folder")
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise VideoIOError(f"{p}: holds no video stream")
            stream = container.streams.video[0]
            frames = stream.frames or sum(1 for _ in container.decode(video=0))
            fps = float(stream.average_rate) if stream.average_rate else None
            return {"frames": frames, "height": stream.height, "width": stream.width, "fps": fps}
    except av.error.FFmpegError as exc:
        raise VideoIOError(f"{p}: cannot decode video ({exc})") from exc


def write_video(
    path: str | Path, frames: torch.Tensor | np.ndarray, fps: float = 8.0, lossless: bool = False, crf: int = 18
) -> Path:
    """Write ``uint8 [T, H, W, C]`` frames atomically.

    A path with a video suffix is encoded with H.264 (``lossless`` uses ``libx264rgb`` at qp 0, which keeps RGB
    exactly); a path without suffix becomes a folder of PNG frames ``000000.png, ...`` (always lossless,
    the format for masks). Odd sizes are fine for PNG; H.264 in yuv420p needs even sizes, so lossy MP4 of odd
    sizes falls back to ``libx264rgb``.
    """
    arr = frames.detach().cpu().numpy() if torch.is_tensor(frames) else np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise VideoIOError(f"{path}: expected uint8 frames [T, H, W, 1|3], got {arr.dtype} {tuple(arr.shape)}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.suffix == "":
        return _write_frame_folder(p, arr)
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoIOError(
            f"{p}: unknown video suffix {p.suffix!r}; use one of {VIDEO_SUFFIXES} or no suffix for PNG frames"
        )
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    t, h, w, _ = arr.shape
    rgb_codec = lossless or h % 2 or w % 2
    with atomic_path(p, suffix=p.suffix) as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream(
            "libx264rgb" if rgb_codec else "libx264", rate=Fraction(fps).limit_denominator(1000)
        )
        stream.width, stream.height = w, h
        stream.pix_fmt = "rgb24" if rgb_codec else "yuv420p"
        stream.options = {"qp": "0"} if lossless else {"crf": str(crf)}
        for frame in arr:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return p


def _write_frame_folder(folder: Path, arr: np.ndarray) -> Path:
    tmp = temp_dir_for(folder)
    for i, frame in enumerate(arr):
        Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(tmp / f"{i:06d}.png")
    replace_dir(tmp, folder)
    return folder


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """``uint8 [T, H, W, C]`` -> ``float32 [C, T, H, W]`` in [-1, 1]."""
    return frames.permute(3, 0, 1, 2).float().div(127.5).sub(1.0)


def to_frames(video: torch.Tensor) -> torch.Tensor:
    """``float [C, T, H, W]`` in [-1, 1] -> ``uint8 [T, H, W, C]`` on the CPU (values outside the range are clipped)."""
    return to_uint8(video).permute(1, 2, 3, 0).cpu()


def write_playable_video(path: str | Path, frames: torch.Tensor | np.ndarray, fps: float = 8.0, crf: int = 18) -> Path:
    """Write ``uint8 [T, H, W, C]`` frames as an MP4 that browsers play: H.264 in yuv420p with the index first.

    yuv420p needs even sizes: an odd height or width gets one more row or column repeating the last one.
    Videos meant as data stay lossless (:func:`write_video` with ``lossless`` or a PNG folder).
    """
    arr = frames.detach().cpu().numpy() if torch.is_tensor(frames) else np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise VideoIOError(f"{path}: expected uint8 frames [T, H, W, 1|3], got {arr.dtype} {tuple(arr.shape)}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    _, h, w, _ = arr.shape
    arr = np.pad(arr, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    p = Path(path)
    if p.suffix.lower() != ".mp4":
        raise VideoIOError(f"{p}: a browser-playable video is an .mp4 file")
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p, suffix=p.suffix) as tmp, av.open(str(tmp), mode="w", options={"movflags": "+faststart"}) as box:
        stream = box.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = arr.shape[2], arr.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in arr:
            box.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        box.mux(stream.encode())
    return p
