"""Fixtures of the reliability tests: a small written split."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four written synthetic clips of 5 frames (MP4 videos, PNG-folder masks); returns the manifest."""
    from itryon.data.synthetic import ClipSpec, write_split

    out = tmp_path_factory.mktemp("split")
    return write_split(out, "val", 4, 1, ClipSpec(num_frames=5))


@pytest.fixture
def split_copy(split: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`split` that a test may damage."""
    dst = tmp_path / "data"
    shutil.copytree(split.parent, dst)
    return dst / split.name
