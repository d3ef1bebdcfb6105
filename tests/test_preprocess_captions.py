"""Captions from user files (frames or seconds, JSON or CSV) and from a frame-labelling model, smoothed into spans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from itryon.preprocess.captions import CaptionError, CaptionFile, FrameLabelCaptioner, QwenVLLabeler, spans_from_labels

FRAMES = np.zeros((20, 4, 4, 3), np.uint8)


def test_json_spans_in_frames_or_seconds_become_frames_and_seconds(tmp_path: Path) -> None:
    path = tmp_path / "captions.json"
    path.write_text(
        json.dumps(
            {
                "clip": {
                    "caption": "A person in a red shirt.",
                    "actions": [
                        {"start": 2, "end": 6, "text": "lifts the hem", "hand": "left"},
                        {
                            "start_s": 1.0,
                            "end_s": 4.0,
                            "text": "pulls the zipper",
                        },  # frames 8..32, cut to the clip's 20
                        {"start": 25, "end": 30, "text": "after the end"},
                    ],
                }
            }
        )
    )
    got = CaptionFile(path).captions("clip", FRAMES, fps=8.0)
    assert got.caption == "A person in a red shirt."
    assert got.actions == [
        {"start": 2, "end": 6, "start_s": 0.25, "end_s": 0.75, "text": "lifts the hem", "hand": "left"},
        {"start": 8, "end": 20, "start_s": 1.0, "end_s": 2.5, "text": "pulls the zipper"},
    ]
    assert CaptionFile(path).captions("unknown", FRAMES, 8.0).actions == []


def test_json_lines_and_csv(tmp_path: Path) -> None:
    lines = tmp_path / "c.jsonl"
    lines.write_text(
        '{"id": "a", "caption": "x", "actions": [{"start": 0, "end": 3, "text": "t"}]}\n\n{"id": "b", "caption": "y"}\n'
    )
    assert CaptionFile(lines).captions("a", FRAMES, 4.0).actions[0]["end_s"] == 0.75
    table = tmp_path / "c.csv"
    table.write_text("id,start_s,end_s,text,kind\na,,,A person.,\na,0.5,1.0,stretches the fabric,stretch\n")
    got = CaptionFile(table).captions("a", FRAMES, 10.0)
    assert got.caption == "A person." and got.actions == [
        {"start": 5, "end": 10, "start_s": 0.5, "end_s": 1.0, "text": "stretches the fabric", "kind": "stretch"}
    ]


def test_bad_captions_name_the_file_and_what_was_expected(tmp_path: Path) -> None:
    table = tmp_path / "bad.csv"
    table.write_text("clip,text\na,b\n")
    with pytest.raises(CaptionError, match=r"bad.csv: missing column\(s\) \['id'\]"):
        CaptionFile(table)
    table.write_text("id,start,end,text\na,3,x,b\n")
    with pytest.raises(CaptionError, match=r"bad.csv:2: start/end must be integer frames"):
        CaptionFile(table).captions("a", FRAMES, 8.0)
    both = tmp_path / "both.json"
    both.write_text(
        json.dumps([{"id": "a", "actions": [{"start": 2, "end": 4, "start_s": 1.0, "end_s": 0.5, "text": "t"}]}])
    )
    with pytest.raises(CaptionError, match=r"start_s=1.0 s is frame 8.00 at 8.0 fps, but the span says frame 2"):
        CaptionFile(both).captions("a", FRAMES, 8.0)
    with pytest.raises(CaptionError, match="captions file .*nope.json does not exist"):
        CaptionFile(tmp_path / "nope.json")


def test_frame_labels_are_smoothed_into_spans() -> None:
    labels = [
        "",
        "lift",
        "lift",
        "",
        "lift",
        "lift",
        "lift",
        "",
        "",
        "",
        "tug",
        "",
        "",
        "zip",
        "zip",
        "zip",
        "zip",
        "",
        "",
        "",
    ]
    spans = spans_from_labels(labels, fps=4.0, bridge=1, shortest=3)
    # the one-frame gap is bridged, the one-frame 'tug' flicker dropped
    assert [(a["text"], a["start"], a["end"]) for a in spans] == [("lift", 1, 7), ("zip", 13, 17)]
    assert spans[1]["start_s"] == 3.25


class Labeler:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def label(self, images):
        self.seen.append(len(images))
        return ["" if i < 2 else "The person lifts the hem." for i in range(len(images))]

    def describe(self, images):
        return " A person in a tank top. "


def test_a_frame_labeller_gives_caption_and_spans() -> None:
    labeler = Labeler()
    got = FrameLabelCaptioner(labeler, every=4, bridge=1, shortest=2).captions("clip", FRAMES, fps=8.0)
    assert labeler.seen == [5]  # frames 0, 4, 8, 12, 16
    assert got.caption == "A person in a tank top."
    assert got.actions == [{"start": 8, "end": 20, "start_s": 1.0, "end_s": 2.5, "text": "The person lifts the hem."}]


def test_a_missing_model_folder_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CaptionError, match=r"video-language model file .*qwen/config.json does not exist"):
        QwenVLLabeler(tmp_path / "qwen")
