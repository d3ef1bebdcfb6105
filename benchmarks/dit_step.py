"""Training-step benchmark of the backbone: WanDiT vs diffusers' WanTransformer3DModel with identical weights.

Forward + backward of ``mean(v^2)`` at a fixed token count, both models in one process, runs alternating
(ABBA order) after warm-up. Reports median step time, the ratio ours / diffusers, activation memory
(bytes of non-parameter tensors autograd saves for backward, on every device) and, on CUDA, peak allocated
memory; achieved FLOP/s (3 x analytic forward FLOPs per step) against the measured dense GEMM FLOP/s of a
large ``torch.mm`` in the same run. Prints a table and writes ``benchmarks/results/dit_step.json``.

    python benchmarks/dit_step.py                       # small config, CPU or the visible GPU
    python benchmarks/dit_step.py --dtype bfloat16 --frames 8 --height 64 --width 64
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from itryon.config import instantiate, load_config
from itryon.models import BackboneInputs, WanDiT, dit_forward_flops
from itryon.models.loading import to_native_names

ROOT = Path(__file__).resolve().parent.parent


def diffusers_twin(model: WanDiT):
    """diffusers' WanTransformer3DModel with ``model``'s shapes and weights."""
    from diffusers import WanTransformer3DModel

    twin = WanTransformer3DModel(
        patch_size=model.patch_size,
        num_attention_heads=model.num_heads,
        attention_head_dim=model.dim // model.num_heads,
        in_channels=model.in_channels,
        out_channels=model.out_channels,
        text_dim=model.text_dim,
        freq_dim=model.freq_dim,
        ffn_dim=model.ffn_dim,
        num_layers=model.num_layers,
        cross_attn_norm=model.cross_attn_norm,
        eps=model.eps,
        rope_max_seq_len=model.rope_max_seq_len,
    )
    with torch.no_grad():
        for param in twin.parameters():  # informative weights (a fresh Wan head is zero)
            param.normal_(0, 0.02)
    model.load_state_dict(to_native_names(twin.state_dict(), "diffusers"), strict=True)
    return twin


def saved_activation_bytes(step, parameters) -> int:
    """Bytes of distinct non-parameter storages autograd keeps for backward during ``step()``."""
    param_ptrs = {p.data_ptr() for p in parameters}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in param_ptrs:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(storages.values())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_flops_per_second(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 5) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs/model/small.yaml"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--frames", type=int, default=4, help="latent frames")
    parser.add_argument("--height", type=int, default=32, help="latent height")
    parser.add_argument("--width", type=int, default=32, help="latent width")
    parser.add_argument("--text-len", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=6, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--gemm-size", type=int, default=0, help="matrix size for the GEMM peak (0: 8192 GPU, 2048 CPU)"
    )
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/dit_step.json"))
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    config = load_config(args.config)  # a _partial_ backbone entry: the latents alone, no condition channels
    ours: WanDiT = instantiate(config)(in_channels=int(config.out_channels))
    theirs = diffusers_twin(ours)
    ours.to(device).train()
    theirs.to(device).train()

    g = torch.Generator().manual_seed(1)
    latents = torch.randn(args.batch, ours.in_channels, args.frames, args.height, args.width, generator=g).to(device)
    timestep = (torch.rand(args.batch, generator=g) * 1000).to(device)
    context = torch.randn(args.batch, args.text_len, ours.text_dim, generator=g).to(device)
    pt, ph, pw = ours.patch_size
    tokens = (args.frames // pt) * (args.height // ph) * (args.width // pw)
    step_flops = 3 * dit_forward_flops(ours, latents.shape, args.text_len)

    def make_step(model, is_ours: bool):
        def step():
            model.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                out = (
                    model(latents, timestep, BackboneInputs(context))
                    if is_ours
                    else model(latents, timestep, context, return_dict=False)[0]
                )
            out.float().square().mean().backward()

        return step

    steps = {"ours": make_step(ours, True), "diffusers": make_step(theirs, False)}
    models = {"ours": ours, "diffusers": theirs}

    # same numbers before timing anything
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        a = ours(latents, timestep, BackboneInputs(context)).float()
        b = theirs(latents, timestep, context, return_dict=False)[0].float()
    max_diff = (a - b).abs().max().item()

    for _ in range(args.warmup):
        for name in steps:
            steps[name]()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    peak: dict[str, float | None] = {name: None for name in steps}
    for r in range(args.repeats):
        order = list(steps) if r % 2 == 0 else list(steps)[::-1]
        for name in order:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sync(device)
            start = time.perf_counter()
            steps[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
            if device.type == "cuda":
                mib = torch.cuda.max_memory_allocated(device) / 2**20
                peak[name] = max(peak[name] or 0.0, mib)
    activations = {name: saved_activation_bytes(steps[name], list(models[name].parameters())) / 2**20 for name in steps}
    gemm = gemm_flops_per_second(device, dtype, args.gemm_size or (8192 if device.type == "cuda" else 2048))

    rows = []
    for name in steps:
        median = statistics.median(times[name])
        rows.append(
            dict(
                model=name,
                median_step_s=median,
                min_step_s=min(times[name]),
                activation_mib=activations[name],
                peak_cuda_mib=peak[name],
                achieved_tflops=step_flops / median / 1e12,
                mfu_vs_gemm=step_flops / median / gemm,
            )
        )
    ratio = rows[0]["median_step_s"] / rows[1]["median_step_s"]
    ratio_min = rows[0]["min_step_s"] / rows[1]["min_step_s"]  # robust to a shared, contended machine
    device_name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )

    print(
        f"dit_step: {args.config} | latents {tuple(latents.shape)} -> {tokens} tokens, text {args.text_len} | "
        f"{args.dtype} on {device_name}"
    )
    print(
        f"forward FLOPs {step_flops / 3 / 1e9:.2f} G, step (fwd+bwd) {step_flops / 1e9:.2f} G | "
        f"dense GEMM peak {gemm / 1e12:.3f} TFLOP/s | max |ours - diffusers| = {max_diff:.2e}"
    )
    header = (
        f"{'model':<10} {'median s':>10} {'min s':>10} {'act MiB':>9} {'peak MiB':>9} {'TFLOP/s':>9} {'of GEMM':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        peak_text = f"{row['peak_cuda_mib']:.0f}" if row["peak_cuda_mib"] is not None else "n/a"
        print(
            f"{row['model']:<10} {row['median_step_s']:>10.4f} {row['min_step_s']:>10.4f} {row['activation_mib']:>9.1f} "
            f"{peak_text:>9} {row['achieved_tflops']:>9.3f} {row['mfu_vs_gemm']:>8.1%}"
        )
    print(f"ratio ours / diffusers step time: median {ratio:.3f}, best {ratio_min:.3f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            dict(
                config=args.config,
                device=device_name,
                dtype=args.dtype,
                latent_shape=list(latents.shape),
                tokens=tokens,
                text_len=args.text_len,
                forward_flops=step_flops // 3,
                gemm_flops_per_s=gemm,
                max_abs_diff=max_diff,
                repeats=args.repeats,
                rows=rows,
                ratio_ours_over_diffusers=ratio,
                ratio_ours_over_diffusers_best=ratio_min,
            ),
            indent=2,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
