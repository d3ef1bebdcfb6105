"""PixelVAE / WanVAE and ByteTextEncoder / T5TextEncoder: layouts, normalisation, padding, local loading."""

from __future__ import annotations

import pytest
import torch

from itryon.data.temporal import latent_frame_index
from itryon.models import ByteTextEncoder, LinearVAE, PixelVAE, T5TextEncoder, WanVAE

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


# ---------------------------------------------------------------- LinearVAE


@pytest.fixture(scope="module")
def linear_vae():
    from itryon.data.synthetic import SyntheticTryOnDataset

    return LinearVAE.from_dataset(SyntheticTryOnDataset("train", 24, seed=0), latent_channels=16, num_samples=24)


def test_linear_vae_is_exact_inside_its_subspace(linear_vae):
    assert linear_vae.latent_channels == 16 and linear_vae.spatial_compression == 4
    components = linear_vae.components
    torch.testing.assert_close(components.T @ components, torch.eye(16), atol=1e-5, rtol=0)  # orthonormal
    z = torch.randn(2, 16, 5, 12, 16)
    # latent frames after the first hold four real frames each: exact; the first holds one frame repeated by the
    # fold, which decoding averages, so only its projection onto the repeated part comes back
    torch.testing.assert_close(linear_vae.encode(linear_vae.decode(z))[:, :, 1:], z[:, :, 1:], atol=1e-4, rtol=1e-4)


def test_linear_vae_reconstructs_held_out_clips(linear_vae):
    """Sixteen components of 192 folded values keep most of a clip of another split (SSIM >= 0.85), far more than
    the same number of channels of a plain subsampling would."""
    from itryon.data.contract import collate
    from itryon.data.synthetic import SyntheticTryOnDataset
    from itryon.metrics.paired import VideoSSIM

    batch = collate([SyntheticTryOnDataset("val", 4, seed=1)[i] for i in range(4)])
    video = batch["video"]
    z = linear_vae.encode(video)
    assert z.shape == (4, 16, 5, 12, 16)
    assert 0.5 < float(z.square().mean()) < 2.0  # unit-scale latents
    ssim = VideoSSIM()
    ssim.update(linear_vae.decode(z).clamp(-1, 1), video)
    assert float(ssim.compute()) >= 0.85


def test_linear_vae_fit_is_deterministic_and_checked():
    from itryon.data.synthetic import SyntheticTryOnDataset

    data = SyntheticTryOnDataset("train", 4, seed=0)
    a = LinearVAE.from_dataset(data, latent_channels=8, num_samples=4)
    b = LinearVAE.from_dataset(data, latent_channels=8, num_samples=4)
    assert torch.equal(a.components, b.components) and torch.equal(a.mean, b.mean)
    with pytest.raises(ValueError, match=r"latent_channels must lie in \[1, 192\]"):
        LinearVAE.from_dataset(data, latent_channels=0)
    with pytest.raises(ValueError, match=r"mean must be \(192,\)"):
        LinearVAE(torch.zeros(10), torch.zeros(192, 4), 1.0)


# ---------------------------------------------------------------- WanVAE


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
