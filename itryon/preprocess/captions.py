"""Captions of a clip: the global caption and time-stamped action captions, from a user file or a video-language model.

A captioner has one method, ``captions(clip, frames, fps) -> ClipCaptions``. :class:`CaptionFile` reads JSON, JSON
lines or CSV written by hand, with spans in frames (``start``/``end``, end exclusive) or seconds
(``start_s``/``end_s``); :class:`FrameLabelCaptioner` asks a :class:`FrameLabeler` (e.g. :class:`QwenVLLabeler`,
weights from a local folder) what happens in sampled frames and smooths the per-frame labels morphologically into
spans (a closing bridges short gaps, an opening drops flickers), as the method's data pipeline does.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import ndimage

SPAN_KEYS = ("start", "end", "start_s", "end_s")


class CaptionError(ValueError):
    """A captions file or model does not give what is expected."""


@dataclass
class ClipCaptions:
    caption: str = ""
    actions: list[dict[str, Any]] = field(default_factory=list)


def span_in_frames(action: dict[str, Any], fps: float, num_frames: int, where: str) -> dict[str, Any] | None:
    """An action with ``start``/``end`` frames (end exclusive) and matching seconds, cut to the clip; None when it
    starts after the clip's end. Seconds are frame boundaries: ``start = round(start_s * fps)``."""
    if "text" not in action or not isinstance(action["text"], str):
        raise CaptionError(f"{where}: an action needs a 'text' string")
    frames = {k: action[k] for k in ("start", "end") if action.get(k) not in (None, "")}
    seconds = {k: action[k] for k in ("start_s", "end_s") if action.get(k) not in (None, "")}
    if len(frames) != 2 and len(seconds) != 2:
        raise CaptionError(
            f"{where}: an action needs start and end (frames, end exclusive) or start_s and end_s (seconds)"
        )
    try:
        if len(frames) == 2:
            start, end = int(frames["start"]), int(frames["end"])
            if str(start) != str(frames["start"]).strip() or str(end) != str(frames["end"]).strip():
                raise ValueError
        else:
            start, end = round(float(seconds["start_s"]) * fps), round(float(seconds["end_s"]) * fps)
    except (TypeError, ValueError):
        raise CaptionError(
            f"{where}: start/end must be integer frames and start_s/end_s numbers of seconds, got {action}"
        ) from None
    if len(frames) == 2 and len(seconds) == 2:
        for key, frame in (("start_s", start), ("end_s", end)):
            if abs(float(seconds[key]) * fps - frame) > 0.5:
                raise CaptionError(
                    f"{where}: {key}={seconds[key]} s is frame {float(seconds[key]) * fps:.2f} at {fps} fps, but the span says frame {frame}"
                )
    if start >= end or start < 0:
        raise CaptionError(f"{where}: span [{start}, {end}) must have 0 <= start < end")
    if start >= num_frames:
        return None
    end = min(end, num_frames)
    out = {
        "start": start,
        "end": end,
        "start_s": round(start / fps, 6),
        "end_s": round(end / fps, 6),
        "text": action["text"],
    }
    for key in ("kind", "hand"):
        if action.get(key) not in (None, ""):
            out[key] = str(action[key])
    return out


class CaptionFile:
    """Captions from ``path``: a JSON object ``{clip: {caption, actions}}``, a JSON list or JSON lines of
    ``{id, caption, actions}``, or a CSV with columns ``id, text`` and optionally ``start, end`` (frames) or
    ``start_s, end_s`` (seconds), ``kind``, ``hand``: a row without a span is the clip's global caption, a row with
    one an action. Clips the file does not name get an empty caption and no actions."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CaptionError(f"captions file {self.path} does not exist")
        self.entries = self._read_csv() if self.path.suffix.lower() == ".csv" else self._read_json()

    def _read_json(self) -> dict[str, dict[str, Any]]:
        text = self.path.read_text(encoding="utf-8")
        try:
            data: Any = json.loads(text)
            rows = (
                data
                if isinstance(data, list)
                else [{"id": k, **v} for k, v in data.items()]
                if isinstance(data, dict)
                else None
            )
        except json.JSONDecodeError:
            rows = []
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise CaptionError(f"{self.path}:{number}: not valid JSON ({exc.msg})") from None
        if rows is None:
            raise CaptionError(
                f"{self.path}: expected an object {{clip: {{caption, actions}}}}, a list or JSON lines of {{id, caption, actions}}"
            )
        out = {}
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or "id" not in row:
                raise CaptionError(f"{self.path}: entry {i} must be an object with an 'id', got {row!r}")
            actions = row.get("actions", [])
            if not isinstance(actions, list):
                raise CaptionError(f"{self.path}: clip {row['id']!r}: 'actions' must be a list")
            out[str(row["id"])] = {"caption": str(row.get("caption", "")), "actions": actions}
        return out

    def _read_csv(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with self.path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in ("id", "text") if c not in (reader.fieldnames or [])]
            if missing:
                raise CaptionError(
                    f"{self.path}: missing column(s) {missing}; expected id, text and optionally start, end (frames) or start_s, end_s (seconds), kind, hand"
                )
            for number, row in enumerate(reader, start=2):
                entry = out.setdefault(row["id"], {"caption": "", "actions": []})
                if all(row.get(k) in (None, "") for k in SPAN_KEYS):
                    entry["caption"] = row["text"]
                else:
                    entry["actions"].append({**{k: v for k, v in row.items() if k != "id"}, "_line": number})
        return out

    def captions(self, clip: str, frames: np.ndarray, fps: float) -> ClipCaptions:
        entry = self.entries.get(clip)
        if entry is None:
            return ClipCaptions()
        actions = []
        for i, action in enumerate(entry["actions"]):
            where = (
                f"{self.path}:{action['_line']}" if "_line" in action else f"{self.path}: clip {clip!r}: actions[{i}]"
            )
            span = span_in_frames({k: v for k, v in action.items() if k != "_line"}, fps, len(frames), where)
            if span is not None:
                actions.append(span)
        return ClipCaptions(entry["caption"], actions)


class FrameLabeler(Protocol):
    """A model that labels frames: ``label(images)`` gives one short action sentence per image ("" for none) and
    ``describe(images)`` the clip's global caption."""

    def label(self, images: list[np.ndarray]) -> list[str]: ...

    def describe(self, images: list[np.ndarray]) -> str: ...


def spans_from_labels(labels: list[str], fps: float, bridge: int = 2, shortest: int = 3) -> list[dict[str, Any]]:
    """Per-frame labels -> action spans: per label, a morphological closing bridges gaps of up to ``bridge`` frames
    and an opening removes runs shorter than ``shortest`` frames; each remaining run is one span."""
    actions = []
    for text in sorted({t for t in labels if t}):
        on = np.array([t == text for t in labels])
        if bridge > 0:
            on = ndimage.binary_closing(np.pad(on, bridge), structure=np.ones(bridge + 1, dtype=bool))[bridge:-bridge]
        if shortest > 1:
            on = ndimage.binary_opening(on, structure=np.ones(shortest, dtype=bool))
        runs, count = ndimage.label(on)
        for k in range(1, count + 1):
            idx = np.flatnonzero(runs == k)
            start, end = int(idx[0]), int(idx[-1]) + 1
            actions.append(
                {
                    "start": start,
                    "end": end,
                    "start_s": round(start / fps, 6),
                    "end_s": round(end / fps, 6),
                    "text": text,
                }
            )
    return sorted(actions, key=lambda a: (a["start"], a["text"]))


class FrameLabelCaptioner:
    """Labels every ``every``-th frame with ``labeler``, holds each label until the next sampled frame, and smooths
    the labels into spans (:func:`spans_from_labels`); the global caption is the labeler's description of a few frames."""

    def __init__(
        self, labeler: FrameLabeler, every: int = 4, bridge: int = 2, shortest: int = 3, describe_frames: int = 4
    ) -> None:
        if every < 1:
            raise CaptionError(f"every must be >= 1, got {every}")
        self.labeler, self.every, self.bridge, self.shortest, self.describe_frames = (
            labeler,
            every,
            bridge,
            shortest,
            describe_frames,
        )

    def captions(self, clip: str, frames: np.ndarray, fps: float) -> ClipCaptions:
        sampled = list(range(0, len(frames), self.every))
        labels = self.labeler.label([frames[i] for i in sampled])
        if len(labels) != len(sampled):
            raise CaptionError(f"the frame labeler gave {len(labels)} labels for {len(sampled)} frames")
        per_frame = [labels[min(i // self.every, len(labels) - 1)].strip() for i in range(len(frames))]
        picks = np.linspace(0, len(frames) - 1, min(self.describe_frames, len(frames))).round().astype(int)
        caption = self.labeler.describe([frames[i] for i in picks]).strip()
        return ClipCaptions(caption, spans_from_labels(per_frame, fps, self.bridge, self.shortest))


NO_ACTION = ("none", "no", "nothing", "no action")
LABEL_PROMPT = (
    "Look at the person's hands and garment. If a hand is acting on the garment (for example lifting the hem, pulling "
    "a zipper, stretching the fabric, tugging the collar), describe it in one short sentence starting with 'The "
    "person'. Otherwise answer 'none'."
)
DESCRIBE_PROMPT = "Describe the person, the garment they wear (colour, pattern, type) and the scene in one sentence."


class QwenVLLabeler:
    """A Qwen2-VL (or other transformers image-text-to-text) model from a local folder as a :class:`FrameLabeler`."""

    def __init__(self, path: str | Path, max_new_tokens: int = 40, device: str = "cpu") -> None:
        self.path = Path(path)
        for name in ("config.json", "preprocessor_config.json"):
            if not (self.path / name).is_file():
                raise CaptionError(
                    f"video-language model file {self.path / name} does not exist (expected a local transformers model folder)"
                )
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(str(self.path), local_files_only=True)
        self.model = (
            AutoModelForImageTextToText.from_pretrained(str(self.path), local_files_only=True).to(device).eval()
        )
        self.max_new_tokens, self.device = max_new_tokens, device

    def _ask(self, images: list[np.ndarray], prompt: str) -> str:
        import torch
        from PIL import Image

        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": prompt}]
        text = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        inputs = self.processor(text=[text], images=[Image.fromarray(im) for im in images], return_tensors="pt").to(
            self.device
        )
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0].strip()

    def label(self, images: list[np.ndarray]) -> list[str]:
        answers = [self._ask([im], LABEL_PROMPT) for im in images]
        return ["" if a.lower().strip(" .") in NO_ACTION else a for a in answers]

    def describe(self, images: list[np.ndarray]) -> str:
        return self._ask(images, DESCRIBE_PROMPT)
