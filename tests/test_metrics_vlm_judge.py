"""The video-language-model ISR judge, with a tiny randomly initialised Qwen2-VL saved to a local folder."""

from __future__ import annotations

import pytest
import torch

from itryon.metrics.isr import InteractionSuccessRate, JudgedClip
from itryon.metrics.registry import build_metric
from itryon.metrics.vlm_judge import DEFAULT_PROMPT, VLMJudge, parse_answer, sample_frames
from itryon.metrics.weights import MissingWeightsError

SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
CHAT = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
    "{% if c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    """A character-level tokenizer and a one-layer Qwen2-VL with random weights, saved like a real checkpoint."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    vocab = {t: i for i, t in enumerate(SPECIALS + [chr(i) for i in range(32, 127)] + ["\n"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIALS)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    pixels = {"min_pixels": 4 * 28 * 28, "max_pixels": 16 * 28 * 28}
    processor = Qwen2VLProcessor(
        Qwen2VLImageProcessor(**pixels), tokenizer, Qwen2VLVideoProcessor(**pixels), chat_template=CHAT
    )
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=512, bos_token_id=vocab["<|im_start|>"], eos_token_id=vocab["<|im_end|>"],
                         rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        image_token_id=vocab["<|image_pad|>"], video_token_id=vocab["<|video_pad|>"],
        vision_start_token_id=vocab["<|vision_start|>"], vision_end_token_id=vocab["<|vision_end|>"],
    )  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights")
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder / "tiny-qwen2-vl")
    processor.save_pretrained(folder / "tiny-qwen2-vl")
    return folder, vocab


def _force(vocab, word: str) -> dict:
    """Generation settings that make the random model answer ``word`` (a large bias on each next character)."""
    ids = [vocab[c] for c in word]
    bias = [[[ids[0]], 50.0]] + [[[a, b], 100.0 * (i + 2)] for i, (a, b) in enumerate(zip(ids, ids[1:]))]
    return {"sequence_bias": bias}


def test_parse_answer():
    assert parse_answer("Yes, the hem is lifted.") is True
    assert parse_answer("  no") is False
    assert parse_answer("Maybe") is None and parse_answer("") is None and parse_answer("5>[E") is None


def test_sample_frames_spreads_over_the_window():
    video = torch.arange(10, dtype=torch.float32).view(1, 10, 1, 1).expand(3, 10, 2, 2) / 127.5 - 1
    frames = sample_frames(video, 2, 9, 4)  # frames 2, 4, 6, 8 (values 2, 4, 6, 8 after uint8 conversion)
    assert frames[:, 0, 0, 0].tolist() == [2, 4, 6, 8]
    assert sample_frames(video, 3, 6, 8)[:, 0, 0, 0].tolist() == [3, 4, 5, 5]  # odd count: last frame repeated
    with pytest.raises(ValueError, match=r"window \[8, 12\) is not inside the clip's 10 frames"):
        sample_frames(video, 8, 12, 4)


def test_judge_builds_prompts_and_aggregates(tiny_vlm):
    folder, vocab = tiny_vlm
    isr = build_metric(
        "isr_vlm",
        weights_dir=folder,
        model_path="tiny-qwen2-vl",
        num_frames=4,
        max_new_tokens=3,
        generate_kwargs=_force(vocab, "yes"),
    )
    judge = isr.judge
    assert isinstance(judge, VLMJudge)
    q = judge.question(DEFAULT_PROMPT, "a person in a red jacket", "pulls the zipper down", 3, 9)
    assert '"pulls the zipper down"' in q and "frames 3 to 9" in q and "red jacket" in q
    preds = torch.rand(2, 3, 10, 56, 56) * 2 - 1
    actions = [
        [{"start": 2, "end": 8, "text": "lifts the hem"}, {"start": 8, "end": 10, "text": "tugs the collar"}],
        [],
    ]
    isr.update(preds, actions=actions, caption=["a person", "a person"])
    out = isr.compute()
    assert judge.last_answers[0].lower().startswith("yes")
    assert float(out["value"]) == 1.0 and int(out["interactions"]) == 2
    assert float(out["false_interaction_rate"]) == 1.0  # the forced 'yes' also answers the passive question
    assert isr.describe()["num_frames"] == 4


def test_random_answers_are_undecidable(tiny_vlm):
    folder, _ = tiny_vlm
    judge = VLMJudge.from_pretrained(folder / "tiny-qwen2-vl", num_frames=2, max_new_tokens=2)
    clip = JudgedClip(torch.zeros(3, 4, 56, 56), [{"start": 0, "end": 4, "text": "lifts the hem"}], caption="c")
    verdicts = judge.judge_actions(clip)
    assert verdicts == [parse_answer(judge.last_answers[-1])]
    m = InteractionSuccessRate(judge)
    m.update(clip.generated[None], actions=[clip.actions])
    assert int(m.interactions) == sum(v is not None for v in verdicts)


def test_missing_model_folder(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"no 'config.json' in '.*absent'"):
        VLMJudge.from_pretrained(tmp_path / "absent")
    with pytest.raises(ValueError, match="needs model_path"):
        build_metric("isr_vlm", weights_dir=tmp_path)
