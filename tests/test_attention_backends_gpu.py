"""On a GPU: WanDiT with each attention backend (sdpa, sdpa restricted to the flash kernel, xformers when installed)
equals diffusers' WanTransformer3DModel in float32 on the CPU, within bf16 rounding. Skipped without CUDA (the GPU
check, benchmarks/gpu_check.sh, runs it)."""

from __future__ import annotations

import contextlib
import importlib.util

import pytest
import torch

from itryon.models import BackboneInputs, WanDiT
from itryon.models.loading import to_native_names

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def kernel(backend: str):
    if backend != "flash":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(SDPBackend.FLASH_ATTENTION)


@pytest.mark.parametrize("backend", ["sdpa", "flash", "xformers"])
def test_backend_matches_diffusers_on_gpu(backend):
    if backend == "xformers" and importlib.util.find_spec("xformers") is None:
        pytest.skip("xformers is not installed")
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    shape = dict(in_channels=16, out_channels=16, text_dim=64, freq_dim=64, ffn_dim=256, num_layers=2)
    reference = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=64, **shape
    ).eval()
    with torch.no_grad():
        for param in reference.parameters():
            param.normal_(0, 0.05)
    ours = WanDiT(dim=128, num_heads=2, attention_backend="xformers" if backend == "xformers" else "sdpa", **shape)
    ours.load_state_dict(to_native_names(reference.state_dict(), "diffusers"), strict=True)
    ours = ours.cuda().eval()
    g = torch.Generator().manual_seed(1)
    latents, context = torch.randn(2, 16, 3, 16, 16, generator=g), torch.randn(2, 12, 64, generator=g)
    timestep = torch.tensor([100.0, 800.0])
    with torch.no_grad():
        expected = reference(latents, timestep, context, return_dict=False)[0]
        with kernel(backend), torch.autocast("cuda", dtype=torch.bfloat16):
            actual = ours(latents.cuda(), timestep.cuda(), BackboneInputs(context=context.cuda())).float().cpu()
    error = (actual - expected).abs().max() / expected.abs().max()
    assert error < 3e-2, f"{backend}: relative max error {error:.2e}"
