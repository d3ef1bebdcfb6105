"""PixelVAE / WanVAE and ByteTextEncoder / T5TextEncoder: layouts, normalisation, padding, local loading."""

from __future__ import annotations

import pytest
import torch

from itryon.data.temporal import latent_frame_index
from itryon.models import ByteTextEncoder, PixelVAE, T5TextEncoder, WanVAE

# ---------------------------------------------------------------- PixelVAE


def test_pixel_vae_roundtrip_and_shapes():
    vae = PixelVAE(spatial_compression=4, temporal_compression=4)
    assert vae.latent_channels == 192
    video = torch.rand(2, 3, 17, 8, 12) * 2 - 1
    latents = vae.encode(video)
    assert latents.shape == (2, 192, 5, 2, 3)
    torch.testing.assert_close(vae.decode(latents), video, atol=0, rtol=0)
    assert vae.latent_frames(81) == 21  # Wan: 81 frames -> 21 latent frames


def test_pixel_vae_channel_layout_by_hand():
    vae = PixelVAE(spatial_compression=2, temporal_compression=4)
    video = torch.zeros(1, 3, 9, 4, 4)
    video[0, 1, 6, 3, 0] = 1.0  # green, frame 6, row 3, column 0
    latents = vae.encode(video)
    # frame 6 is the 2nd frame (index 1) of latent frame 2 (frames 5..8); row 3 = patch row 1, offset 1;
    # column 0 = patch column 0, offset 0. Channel = ((rgb * t + time) * s + row) * s + column.
    assert latents.nonzero().tolist() == [[0, ((1 * 4 + 1) * 2 + 1) * 2 + 0, 2, 1, 0]]
    # every pixel frame lands in the latent frame the shared temporal mapping says
    for frame, latent in enumerate(latent_frame_index(9, 4).tolist()):
        one = torch.zeros(1, 3, 9, 4, 4)
        one[:, :, frame] = 1.0
        assert vae.encode(one).sum(dim=(0, 1, 3, 4)).nonzero().flatten().tolist() == [latent]


def test_pixel_vae_first_frame_is_averaged_on_decode():
    vae = PixelVAE(spatial_compression=1, temporal_compression=2)
    latents = torch.zeros(1, 6, 2, 1, 1)
    latents[0, :, 0, 0, 0] = torch.tensor([1.0, 3.0, 0.0, 0.0, 5.0, 7.0])  # (rgb, time) for latent frame 0
    video = vae.decode(latents)
    assert video.shape == (1, 3, 3, 1, 1)
    assert video[0, :, 0, 0, 0].tolist() == [2.0, 0.0, 6.0]


def test_pixel_vae_errors():
    vae = PixelVAE(4, 4)
    with pytest.raises(ValueError, match="needs 1 \\+ 4k frames, got 16"):
        vae.encode(torch.zeros(1, 3, 16, 8, 8))
    with pytest.raises(ValueError, match="divisible by spatial_compression 4"):
        vae.encode(torch.zeros(1, 3, 5, 6, 8))
    with pytest.raises(ValueError, match="latents must have 192 channels"):
        vae.decode(torch.zeros(1, 48, 2, 2, 2))


# ---------------------------------------------------------------- WanVAE


@pytest.fixture(scope="module")
def wan_vae_folder(tmp_path_factory):
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


def test_wan_vae_normalises_latents_once(wan_vae_folder):
    vae = WanVAE(wan_vae_folder.parent)  # a pipeline folder with vae/
    assert (vae.latent_channels, vae.spatial_compression, vae.temporal_compression) == (16, 8, 4)
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    latents = vae.encode(video)
    assert latents.shape == (1, 16, 3, 2, 2)
    raw = vae.vae.encode(video).latent_dist.mode()
    mean = torch.linspace(-1, 1, 16).view(1, 16, 1, 1, 1)
    std = torch.linspace(0.5, 2, 16).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(latents, (raw - mean) / std, atol=1e-6, rtol=1e-6)
    decoded = vae.decode(latents)
    torch.testing.assert_close(decoded, vae.vae.decode(raw).sample.clamp(-1, 1), atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in vae.parameters())


def test_wan_vae_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        WanVAE(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no AutoencoderKLWan config.json"):
        WanVAE(tmp_path)


# ---------------------------------------------------------------- ByteTextEncoder


def test_byte_text_encoder_padding_and_lengths():
    torch.manual_seed(0)
    encoder = ByteTextEncoder(dim=32, max_length=16)
    embeddings, mask = encoder(["lift the hem", "", "é" * 20])
    assert embeddings.shape == (3, 16, 32) and encoder.dim == 32
    assert mask.sum(dim=1).tolist() == [13, 1, 16]  # bytes + end token; "é" is 2 bytes, truncated to 15 + end
    assert torch.all(embeddings[~mask] == 0) and torch.all(embeddings[mask].abs().sum(-1) > 0)
    alone, _ = encoder(["lift the hem"])
    torch.testing.assert_close(alone[0], embeddings[0], atol=1e-5, rtol=1e-5)  # independent of batch partners
    ids, _ = encoder.tokenize(["AB"])
    assert ids[0, :3].tolist() == [65 + 2, 66 + 2, 1]


def test_byte_text_encoder_trains():
    encoder = ByteTextEncoder(dim=16, max_length=8, num_layers=1, num_heads=2)
    embeddings, _ = encoder(["zip"])
    # a fixed random read-out: the plain sum of a LayerNorm output has no gradient
    weights = torch.randn(embeddings.shape, generator=torch.Generator().manual_seed(0))
    (embeddings * weights).sum().backward()
    assert encoder.token_embedding.weight.grad.abs().sum() > 0
    with pytest.raises(TypeError, match="list of strings"):
        encoder("zip")


# ---------------------------------------------------------------- T5TextEncoder


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
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


def test_t5_encoder_wan_style_padding(t5_folder):
    encoder = T5TextEncoder(t5_folder, max_length=8)
    assert encoder.dim == 16
    embeddings, mask = encoder(["a person lifts the hem", "red"])
    assert embeddings.shape == (2, 8, 16)
    assert mask.sum(dim=1).tolist() == [6, 2]  # words + </s>
    assert torch.all(embeddings[~mask] == 0)
    ids = torch.tensor([[3, 4, 5, 6, 7, 1]])
    direct = encoder.encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    torch.testing.assert_close(embeddings[0, :6], direct[0], atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.encoder.training


def test_t5_encoder_missing_parts(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        T5TextEncoder(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        T5TextEncoder(tmp_path)


def test_wan_vae_checks_stated_compressions(wan_vae_folder):
    vae = WanVAE(wan_vae_folder, spatial_compression=8, temporal_compression=4)
    assert vae.spatial_compression == 8
    with pytest.raises(ValueError, match="spatial_compression=4 was given but the VAE config gives 8"):
        WanVAE(wan_vae_folder, spatial_compression=4)
