"""A contact sheet: several clips x frames, with rows for the video, hand prior, agnostic and counterfactual."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

PREVIEW_ROWS = ("video", "hand_prior", "agnostic", "counterfactual")


def contact_sheet(
    clips: Sequence[dict[str, Any]], max_frames: int = 9, rows: Sequence[str] = PREVIEW_ROWS, scale: int = 2
) -> np.ndarray:
    """uint8 ``(H', W', 3)`` from clips of channels-first arrays (as :func:`generate_clip` returns): per clip one row per key in ``rows``, columns = evenly spaced frames; the garment leads each clip.

    Frames in an action span get a red bar on top of the video row (a white bar for a passive gesture's span).
    """
    if not clips:
        raise ValueError("contact_sheet needs at least one clip")
    _, t_count, h, w = clips[0]["video"].shape
    frames = np.unique(np.linspace(0, t_count - 1, min(max_frames, t_count)).round().astype(int))
    gap = 2
    cell_w, cell_h = w + gap, h + gap
    sheet = np.full((len(clips) * (len(rows) * cell_h + 2 * gap), (len(frames) + 1) * cell_w, 3), 40, dtype=np.uint8)
    for c, clip in enumerate(clips):
        top = c * (len(rows) * cell_h + 2 * gap)
        g = clip["garment"].transpose(1, 2, 0)
        gh, gw = min(g.shape[0], h), min(g.shape[1], w)
        sheet[top : top + gh, :gw] = g[:gh, :gw]
        spans = [(a["start"], a["end"], (255, 40, 40)) for a in clip["actions"]]
        if clip["meta"].get("passive"):
            spans = [(a["start"], a["end"], (255, 255, 255)) for a in clip["meta"].get("counterfactual_actions", [])]
        for r, key in enumerate(rows):
            for col, t in enumerate(frames):
                y, x = top + r * cell_h, (col + 1) * cell_w
                sheet[y : y + h, x : x + w] = clip[key][:, t].transpose(1, 2, 0)
                if r == 0:
                    for start, end, colour in spans:
                        if start <= t < end:
                            sheet[y : y + 2, x : x + w] = colour
    return np.repeat(np.repeat(sheet, scale, axis=0), scale, axis=1)
