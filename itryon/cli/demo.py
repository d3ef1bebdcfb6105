"""Try a run in the browser: ``itryon demo --run runs/NAME/STAMP`` (Gradio; ``pip install -e ".[demo]"``).

Upload a person video and an in-shop garment image, optionally a caption and action captions with time spans
(``12-30: pulls the zipper down`` in frames, end exclusive, or ``1.5s-3s: ...`` in seconds), and see the result beside
the source and the 3D hand prior. The agnostic video, mask, pose and hand prior come from the preprocessing
estimators (``--segmenter/--pose/--hands`` as for ``itryon preprocess``; default MediaPipe from the ``preprocess``
extra), the video from the run's :class:`~itryon.inference.pipeline.ITryOnPipeline`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from itryon.cli.options import add_trust_config
from itryon.diffusion.sampler import SOLVERS

ACTION_LINE = re.compile(r"^\s*(\d+(?:\.\d+)?)(s?)\s*-\s*(\d+(?:\.\d+)?)(s?)\s*:\s*(.+?)\s*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="run folder of train.py, or a pipeline folder of itryon export")
    parser.add_argument("--weights", help="safetensors or checkpoint (default: the run's weights/model.safetensors)")
    parser.add_argument("--segmenter", default="mediapipe", help="person segmenter (as for itryon preprocess)")
    parser.add_argument("--pose", default="mediapipe", help="body pose estimator (as for itryon preprocess)")
    parser.add_argument("--hands", default="mediapipe", help="hand estimator (as for itryon preprocess)")
    parser.add_argument("--category", default="upper", help="garment category: upper, lower or dress")
    parser.add_argument("--max-frames", type=int, default=81, help="frames of the uploaded video to use")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    add_trust_config(parser)


def parse_actions(text: str, fps: float, num_frames: int) -> list[dict[str, Any]]:
    """Action captions from lines ``START-END: text`` (frames, end exclusive; ``1.5s`` for seconds)."""
    actions = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        m = ACTION_LINE.match(line)
        if m is None:
            raise ValueError(f"action line {number} {line!r}: write START-END: text, e.g. '12-30: lifts the hem'")
        a, a_s, b, b_s, caption = m.groups()
        start = round(float(a) * fps) if a_s else int(float(a))
        end = round(float(b) * fps) if b_s else int(float(b))
        end = min(end, num_frames)
        if not 0 <= start < end:
            raise ValueError(f"action line {number} {line!r}: the span [{start}, {end}) holds no frame of the video")
        actions.append({"start": start, "end": end, "text": caption})
    return actions


class TryOnDemo:
    """The demo's work, without the page: conditions from a video, the pipeline, the videos shown."""

    def __init__(
        self, pipe: Any, estimators: dict[str, Any], category: str = "upper", max_frames: int = 81, out_dir=None
    ):
        self.pipe = pipe
        self.estimators = estimators
        self.category = category
        self.max_frames = max_frames
        self.out_dir = Path(out_dir or tempfile.mkdtemp(prefix="itryon-demo-"))

    def __call__(
        self,
        video_path: str,
        garment: np.ndarray,
        caption: str = "",
        actions: str = "",
        steps: int = 10,
        sampler: str = "euler",
        seed: int = 0,
        garment_guidance: float = 1.0,
        text_guidance: float = 1.0,
        hand_guidance: float = 1.0,
    ) -> tuple[str, str]:
        """``(side_by_side_mp4, result_mp4)``: source | hand prior | result, and the result alone."""
        import torch

        from itryon.data.contract import collate
        from itryon.data.manifest import sample_from_arrays
        from itryon.data.video_io import read_video, to_frames, video_info, write_playable_video
        from itryon.preprocess.pipeline import render_conditions

        if not video_path:
            raise ValueError("upload a person video")
        if garment is None:
            raise ValueError("upload a garment image")
        frames = read_video(video_path).numpy()[: self.max_frames]
        if frames.shape[-1] == 1:
            frames = np.repeat(frames, 3, axis=-1)
        fps = video_info(video_path)["fps"] or 8.0
        arrays, _, _ = render_conditions(frames, self.estimators, self.category)
        arrays["video"] = frames.transpose(3, 0, 1, 2)
        arrays["garment"] = np.asarray(garment)[..., :3].transpose(2, 0, 1)
        acts = parse_actions(actions, fps, len(frames))
        sample = sample_from_arrays(arrays, caption or "", acts, {"id": "demo", "fps": fps})
        result = self.pipe(
            batch=collate([sample]),
            num_inference_steps=int(steps),
            sampler=sampler,
            seed=int(seed),
            garment_guidance=float(garment_guidance),
            text_guidance=float(text_guidance),
            hand_guidance=float(hand_guidance),
        ).frames[0]
        source, hands = sample["video"], sample["hand_prior"]
        panels = torch.cat([source, hands, result.float().cpu()], dim=-1)  # (3, T, H, 3W)
        stem = f"{os.getpid()}-{len(list(self.out_dir.glob('*.mp4')))}"
        side = write_playable_video(self.out_dir / f"{stem}-side.mp4", to_frames(panels), fps=fps)
        alone = write_playable_video(self.out_dir / f"{stem}-result.mp4", to_frames(result.float()), fps=fps)
        return str(side), str(alone)


def build_demo(demo: TryOnDemo) -> Any:
    """The Gradio page of ``demo`` (``tryon`` is its API name, for ``gradio_client``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    with gr.Blocks(title="iTryOn") as page:
        gr.Markdown("# iTryOn: interactive video try-on\nUpload a person video and a garment image.")
        with gr.Row():
            video = gr.Video(label="person video", sources=["upload"])
            garment = gr.Image(label="garment image", type="numpy", sources=["upload"])
        caption = gr.Textbox(label="caption", placeholder="a person in a striped t-shirt")
        actions = gr.Textbox(label="actions (one per line: START-END: text, frames or seconds)", lines=3)
        with gr.Row():
            steps = gr.Slider(1, 50, value=10, step=1, label="steps")
            sampler = gr.Dropdown(list(SOLVERS), value="euler", label="sampler")
            seed = gr.Number(value=0, precision=0, label="seed")
        with gr.Row():
            garment_guidance = gr.Slider(1.0, 8.0, value=1.0, label="garment guidance")
            text_guidance = gr.Slider(1.0, 8.0, value=1.0, label="text guidance")
            hand_guidance = gr.Slider(1.0, 8.0, value=1.0, label="hand guidance")
        button = gr.Button("Try on", variant="primary")
        side = gr.Video(label="source | hand prior | result")
        result = gr.Video(label="result")
        button.click(
            demo,
            [video, garment, caption, actions, steps, sampler, seed, garment_guidance, text_guidance, hand_guidance],
            [side, result],
            api_name="tryon",
        )
    return page


def load_pipeline(path: Path, weights: Path | None = None) -> Any:
    """The pipeline of a run folder (``config.yaml``) or of a pipeline folder (``model_index.json``)."""
    if (path / "model_index.json").is_file():
        from itryon.inference.pipeline import ITryOnPipeline

        return ITryOnPipeline.from_pretrained(path)
    from itryon.inference.export import pipeline_from_run

    return pipeline_from_run(path, weights)


def run(args: argparse.Namespace) -> int:
    from itryon.config import ConfigError, trust_targets
    from itryon.preprocess.estimators import EstimatorError, EstimatorSpec

    try:
        import gradio  # noqa: F401
    except ImportError:
        print('error: the demo needs Gradio: pip install -e ".[demo]"', file=sys.stderr)
        return 2
    try:
        with trust_targets(args.trust_config):
            pipe = load_pipeline(Path(args.run), Path(args.weights) if args.weights else None).to(args.device)
        estimators = EstimatorSpec(args.segmenter, args.pose, args.hands).build()
    except (ConfigError, EstimatorError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    page = build_demo(TryOnDemo(pipe, estimators, args.category, args.max_frames))
    page.launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="itryon demo", description=__doc__.splitlines()[0])
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
