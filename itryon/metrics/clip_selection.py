"""Which clips of which videos enter VFID: ours (every clip) or one of the two selections of the reference scripts.

The VFID numbers of CatV2TON / MagicTryOn come from a ``VideoDataset`` of the ``fid_metrics`` package that
public copies of the evaluation script carry in two variants:

- ``reference``: the dataset as the CatV2TON script ships it. Videos come in ``glob`` order (the file
  system's), a video of ``F`` frames has ``F // L`` non-overlapping clips, and clip ``j`` of video ``v``
  starts at ``(j - clips before v) * L`` -- except for the first video, where an operator-precedence slip
  (``a - b if v > 0 else 0``) makes every clip start at frame 0: the first video contributes its first
  clip as many times as it has clips, and its other clips are never read.
- ``reference_sorted``: a later copy with that slip fixed, videos sorted by path, at most the first 173
  videos of each set, and only frames ``[0, 600)`` of each video (clips inside that window).

``all`` (default) reads every non-overlapping clip of every video. Selections are per set (generated,
reference) and follow the order videos reach the metric: ``itryon evaluate`` sorts by name, which is
``reference_sorted``'s order; to reproduce ``reference`` exactly, the first video must be the one ``glob``
lists first in that folder. With several ranks, each rank's first video is treated as a first video.
"""

from __future__ import annotations

CLIP_SELECTIONS = ("all", "reference", "reference_sorted")
SORTED_MAX_VIDEOS = 173
SORTED_MAX_FRAMES = 600


def check_clip_selection(selection: str) -> str:
    if selection not in CLIP_SELECTIONS:
        raise ValueError(f"unknown VFID clip selection {selection!r}; available: {list(CLIP_SELECTIONS)}")
    return selection


def usable_frames(selection: str, num_frames: int) -> int:
    """Frames of a video of ``num_frames`` frames that clips may come from."""
    return min(num_frames, SORTED_MAX_FRAMES) if selection == "reference_sorted" else num_frames


def clip_indices(selection: str, seen: int, batch: int, clips_per_video: int) -> list[int]:
    """Indices into a batch's clips (video-major, ``clips_per_video`` each) that enter the statistics, in order.

    ``seen`` counts the videos of this set that reached the metric before this batch. An index may repeat
    (the first video under ``reference``).
    """
    check_clip_selection(selection)
    out: list[int] = []
    for b in range(batch):
        video = seen + b
        first = b * clips_per_video
        if selection == "reference" and video == 0:
            out += [first] * clips_per_video
        elif selection == "reference_sorted" and video >= SORTED_MAX_VIDEOS:
            continue
        else:
            out += list(range(first, first + clips_per_video))
    return out
