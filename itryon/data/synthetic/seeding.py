"""Platform-independent random streams for a clip, keyed by (split, index, seed).

Python's ``hash()`` is salted per process, so the key is hashed with BLAKE2b; the streams are numpy
``PCG64`` generators, whose output for a given seed is the same on every machine.
"""

from __future__ import annotations

import hashlib

import numpy as np

STREAMS = ("appearance", "garment", "background", "plan", "passive")


def clip_key(split: str, index: int, seed: int, family: str | None = None) -> int:
    """A 128-bit integer that names the clip ``(split, index, seed)``, or clip ``index`` of a benchmark ``family``."""
    name = (
        f"itryon-synthetic/{split}/{int(seed)}/{int(index)}"
        if family is None
        else f"itryon-synthetic/{split}/{family}/{int(seed)}/{int(index)}"
    )
    digest = hashlib.blake2b(name.encode(), digest_size=16).digest()
    return int.from_bytes(digest, "little")


def clip_streams(split: str, index: int, seed: int, family: str | None = None) -> dict[str, np.random.Generator]:
    """One independent generator per part of the clip (see :data:`STREAMS`).

    Separate streams keep parts independent: deciding whether a clip is passive does not shift the
    draws of its garment or its gestures, so a clip can be rendered both ways with the same 2D motion.
    """
    root = np.random.SeedSequence(clip_key(split, index, seed, family))
    return {name: np.random.Generator(np.random.PCG64(child)) for name, child in zip(STREAMS, root.spawn(len(STREAMS)))}
