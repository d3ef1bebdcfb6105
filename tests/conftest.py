"""Shared fixtures: batches of synthetic clips and random contract-shaped batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session")
def synthetic_batch() -> dict[str, Any]:
    """The first two clips of the synthetic train split (seed 0), collated: 17 frames of 48 x 64."""
    from itryon.data.contract import collate
    from itryon.data.synthetic import SyntheticTryOnDataset

    clips = SyntheticTryOnDataset(split="train", num_clips=4, seed=0)
    return collate([clips[i] for i in range(2)])


@pytest.fixture(scope="session")
def synthetic_batch_of_four() -> dict[str, Any]:
    """The first four clips of the synthetic train split (seed 0), collated."""
    from itryon.data.contract import collate
    from itryon.data.synthetic import SyntheticTryOnDataset

    clips = SyntheticTryOnDataset(split="train", num_clips=4, seed=0)
    return collate([clips[i] for i in range(4)])


def random_batch(
    size: Sequence[int] = (2, 9, 8, 8),
    *,
    seed: int = 0,
    garment: Sequence[int] = (12, 10),
    hand_free_frames: int = 5,
    handless: Sequence[int] = (),
    actions: Sequence[Sequence[dict[str, Any]]] | None = None,
    captions: Sequence[str] = ("a person in a striped shirt", "someone in a dotted dress"),
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """A batch with the contract's condition keys, random values drawn from ``seed``.

    ``size`` is ``(B, T, H, W)``; the hand prior is zero (no hand) in the first ``hand_free_frames`` frames and
    for the samples in ``handless``. ``extra`` adds ``depth`` ``(B, 1, T, H, W)`` and/or ``interaction`` ``(B, T)``
    (zeros).
    """
    b, t, h, w = size
    g = torch.Generator().manual_seed(seed)
    hands = torch.rand(b, 3, t, h, w, generator=g)
    hands[:, :, :hand_free_frames] = 0.0
    for i in handless:
        hands[i] = 0.0
    batch: dict[str, Any] = {
        "video": torch.rand(b, 3, t, h, w, generator=g) * 2 - 1,
        "agnostic": torch.rand(b, 3, t, h, w, generator=g) * 2 - 1,
        "agnostic_mask": (torch.rand(b, 1, t, h, w, generator=g) > 0.5).float(),
        "pose": torch.rand(b, 3, t, h, w, generator=g) * 2 - 1,
        "hand_prior": hands,
    }
    if "depth" in extra:
        batch["depth"] = torch.rand(b, 1, t, h, w, generator=g)
    batch["garment"] = torch.rand(b, 3, *garment, generator=g) * 2 - 1
    batch["caption"] = list(captions[:b])
    batch["actions"] = [list(a) for a in actions] if actions is not None else [[] for _ in range(b)]
    if "interaction" in extra:
        batch["interaction"] = torch.zeros(b, t)
    return batch


@pytest.fixture(scope="session")
def make_batch() -> Callable[..., dict[str, Any]]:
    """:func:`random_batch`, for tests that build their own condition batches."""
    return random_batch


@pytest.fixture(scope="session")
def wan_vae_folder(tmp_path_factory):
    """A tiny random AutoencoderKLWan (16 latent channels, 8x spatial, 4x temporal) saved as a pipeline's vae/."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    model = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=torch.linspace(-1, 1, 16).tolist(),
        latents_std=torch.linspace(0.5, 2, 16).tolist(),
    )
    folder = tmp_path_factory.mktemp("wan") / "vae"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def t5_folder(tmp_path_factory):
    """A tiny random UMT5 encoder (width 16) and a word-level tokenizer, in Wan's text_encoder/ + tokenizer/ layout."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    words = "a person lifts the hem pulls zipper down red shirt".split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    folder = tmp_path_factory.mktemp("wan_t5")
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(folder / "tokenizer")
    torch.manual_seed(0)
    config = UMT5Config(
        vocab_size=16,
        d_model=16,
        d_kv=4,
        d_ff=32,
        num_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
    )
    UMT5EncoderModel(config).save_pretrained(folder / "text_encoder")
    return folder
