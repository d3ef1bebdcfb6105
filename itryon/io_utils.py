"""Writing files so that a reader never sees half of one, and reading torch files with one-line errors.

Every output of a run (checkpoints, weights, metrics, configs, videos, manifests) goes through
:func:`atomic_path` or one of its wrappers: the data is written to a temporary file *in the target's own
folder* (``.<name>.tmp-<random>``), flushed and fsynced, given the permissions the user's umask asks for,
and renamed over the target. A rename within one folder is atomic on POSIX filesystems, so a kill at any
moment leaves either the previous file or the new one, never a truncated file; a temporary file in another
folder (``$TMPDIR``) could sit on another filesystem, where a "rename" is a copy that a kill can cut short.
A kill can leave the temporary file behind: :func:`remove_orphaned_temps` deletes those on the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_TAG = ".tmp-"  # temporary names are "." + target name + TEMP_TAG + random suffix


class UnreadableFileError(ValueError):
    """A file exists but cannot be read as what it should be (truncated, foreign, or holding code)."""


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions of a new file under the current umask (``0o666 & ~umask``), as ``open()`` would give."""
    return 0o666 & ~_umask()


def is_temp_name(name: str) -> bool:
    """True for the names :func:`atomic_path` gives its temporary files and folders."""
    return name.startswith(".") and TEMP_TAG in name


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems (and Windows) cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it is fsynced and renamed over ``path``.

    For writers that take a file name (``torch.save``, ``safetensors.save_file``, PyAV, PIL). ``suffix`` is
    appended to the temporary name for writers that choose a format by extension. On an exception the
    temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}{TEMP_TAG}", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, file_mode())  # mkstemp creates 0600; the file is shared like any other output
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """``open()`` for writing through :func:`atomic_path` (``mode`` ``"w"`` or ``"wb"``)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any, indent: int | None = 2, **kwargs: Any) -> Path:
    return write_text(path, json.dumps(data, indent=indent, **kwargs) + "\n")


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line to a log-like file in a single ``write`` (``O_APPEND``), so that processes appending
    at once (DataLoader workers, ranks) never interleave within a line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, file_mode())
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def replace_dir(tmp: Path, target: Path) -> None:
    """Put folder ``tmp`` (written next to ``target``) in ``target``'s place.

    POSIX cannot rename over a non-empty folder: the old folder is first renamed aside (to a temporary
    name, so that a kill in between leaves an orphan that :func:`remove_orphaned_temps` deletes), then the
    new one takes its name, then the old one is removed.
    """
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
    for f in tmp.iterdir():
        os.chmod(f, file_mode())
    old = None
    if target.exists():
        old = target.parent / f".{target.name}{TEMP_TAG}old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def temp_dir_for(target: Path) -> Path:
    """A new empty temporary folder next to ``target``, for :func:`replace_dir`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}{TEMP_TAG}", dir=target.parent))


def remove_orphaned_temps(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete the temporary files and folders a killed writer left in ``folder``; returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    entries = folder.rglob(".*") if recursive else folder.glob(".*")
    for entry in sorted(entries, key=lambda p: len(p.parts)):
        if not is_temp_name(entry.name) or any(is_temp_name(p) for p in entry.relative_to(folder).parts[:-1]):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


# ----------------------------------------------------------------------------------------------------
# reading torch files

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def torch_load(path: str | os.PathLike, what: str = "torch file", **kwargs: Any) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)`` whose failures are one-line
    :class:`UnreadableFileError` messages naming the file (0-byte, truncated, not a torch file, or a pickle
    that would run code)."""
    import torch

    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise UnreadableFileError(f"{path}: empty file (0 bytes), not a {what}; it was probably cut short by a kill")
    kwargs.setdefault("map_location", "cpu")
    kwargs.setdefault("weights_only", True)
    try:
        return torch.load(path, **kwargs)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL.search(str(exc))
        detail = f"it references {found.group(1)}, which a weights-only load refuses" if found else first_line(exc)
        raise UnreadableFileError(
            f"{path}: not loadable as a {what}: {detail} (only tensors and plain values are read)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        raise UnreadableFileError(
            f"{path}: not a readable {what} (truncated or another format: {first_line(exc)})"
        ) from None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
