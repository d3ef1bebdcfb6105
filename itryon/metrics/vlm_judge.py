"""An ISR judge that asks a local video-language model whether each captioned action is performed.

The model and its processor load from a local folder with ``local_files_only=True`` (e.g. a Qwen2-VL
checkpoint copied next to the other metric weights); nothing is downloaded. The prompt templates and
the number of frames sampled per action window are options, recorded by :meth:`VLMJudge.describe`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from itryon.data.pixels import to_uint8
from itryon.metrics.isr import JudgedClip
from itryon.metrics.weights import MissingWeightsError, weights_folder

DEFAULT_PROMPT = (
    "The video shows frames {start} to {end} of a clip of a person trying on a garment ({caption}). "
    'Does the person perform this action in the video: "{action}"? Answer yes or no.'
)
DEFAULT_PASSIVE_PROMPT = (
    "The video shows a person trying on a garment ({caption}). Does a hand visibly deform the garment "
    "(lift, pull, stretch or tug it)? Answer yes or no."
)
_YES, _NO = ("yes", "y", "true"), ("no", "n", "false")


def parse_answer(text: str) -> bool | None:
    """``True`` for an answer starting with yes, ``False`` for no, ``None`` for anything else."""
    words = re.findall(r"[a-z]+", text.lower())
    if not words:
        return None
    return True if words[0] in _YES else False if words[0] in _NO else None


def sample_frames(video: torch.Tensor, start: int, end: int, num_frames: int) -> torch.Tensor:
    """Up to ``num_frames`` frames spread evenly over ``[start, end)`` of ``video`` ``(3, T, H, W)`` in [-1, 1],
    as uint8 ``(n, 3, H, W)``; the last frame repeats to make ``n`` even (video models take frame pairs)."""
    if not 0 <= start < end <= video.shape[1]:
        raise ValueError(f"window [{start}, {end}) is not inside the clip's {video.shape[1]} frames")
    index = torch.linspace(start, end - 1, steps=min(num_frames, end - start)).round().long().unique()
    if len(index) % 2:
        index = torch.cat([index, index[-1:]])
    return to_uint8(video[:, index]).permute(1, 0, 2, 3).cpu()  # (n, 3, H, W)


class VLMJudge:
    """Asks ``model`` (a transformers image-text-to-text model) one yes/no question per action window."""

    name = "vlm"
    batch_keys = ("actions", "caption")

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        prompt: str | None = None,
        passive_prompt: str | None = None,
        num_frames: int = 8,
        max_new_tokens: int = 8,
        generate_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if num_frames < 2:
            raise ValueError(f"num_frames must be >= 2 (video models take frame pairs), got {num_frames}")
        self.model, self.processor = model.eval(), processor
        self.prompt = prompt or DEFAULT_PROMPT
        self.passive_prompt = passive_prompt or DEFAULT_PASSIVE_PROMPT
        self.num_frames, self.max_new_tokens = num_frames, max_new_tokens
        self.generate_kwargs = dict(generate_kwargs or {})
        self.last_answers: list[str] = []

    @classmethod
    def from_pretrained(
        cls, model_path: str | os.PathLike | None, weights_dir: str | os.PathLike | None = None, **kwargs
    ) -> VLMJudge:
        """Load processor and model from ``model_path`` (absolute, or relative to the weights folder)."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if model_path is None:
            raise ValueError(
                "the VLM judge needs model_path: a local folder holding a transformers video-language model"
            )
        path = Path(model_path)
        if not path.is_absolute() and not path.exists():
            path = weights_folder(weights_dir) / path
        if not (path / "config.json").is_file():
            raise MissingWeightsError(
                f"VLM judge: no 'config.json' in '{path}' (expected a local transformers model folder)"
            )
        processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(str(path), local_files_only=True)
        return cls(model, processor, **kwargs)

    def question(self, template: str, caption: str | None, action: str = "", start: int = 0, end: int = 0) -> str:
        return template.format(action=action, caption=caption or "no caption", start=start, end=end)

    @torch.no_grad()
    def ask(self, frames: torch.Tensor, question: str) -> str:
        """The model's answer to ``question`` about ``frames`` ``(n, 3, H, W)`` uint8 (greedy decoding)."""
        messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[text], videos=[frames], return_tensors="pt")
        device = next(self.model.parameters()).device
        inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, **self.generate_kwargs)
        answer = self.processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0]
        self.last_answers.append(answer)
        return answer

    def judge_actions(self, clip: JudgedClip) -> list[bool | None]:
        verdicts = []
        for a in clip.actions:
            start, end = int(a["start"]), int(a["end"])
            frames = sample_frames(clip.generated, start, end, self.num_frames)
            question = self.question(self.prompt, clip.caption, str(a["text"]), start, end)
            verdicts.append(parse_answer(self.ask(frames, question)))
        return verdicts

    def judge_passive(self, clip: JudgedClip) -> bool | None:
        frames = sample_frames(clip.generated, 0, clip.generated.shape[1], self.num_frames)
        return parse_answer(self.ask(frames, self.question(self.passive_prompt, clip.caption)))

    def describe(self) -> dict:
        return {
            "prompt": self.prompt,
            "passive_prompt": self.passive_prompt,
            "num_frames": self.num_frames,
            "decoding": "greedy",
            "max_new_tokens": self.max_new_tokens,
        }
