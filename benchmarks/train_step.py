"""Training-step benchmark of the Wan2.1-1.3B and Wan2.1-VACE-1.3B backbones at the paper's clip sizes.

One step is forward + backward of a velocity MSE + an AdamW step, random weights, bf16 autocast over fp32 master
weights (the trainer's ``bf16-mixed``). Per config and clip size it reports the median step time, video tokens per
second, model FLOPs utilisation (3 x analytic forward FLOPs per step) against the GPU's dense bf16 peak (a table of
known parts) and against a bf16 GEMM measured in the same run, the peak memory with and without activation
checkpointing beside an analytic estimate, and the same step of diffusers' ``WanVACETransformer3DModel`` for the
VACE config. Prints a table and writes JSON.

    python benchmarks/train_step.py                  # GPU: 81x576x768 and 81x480x832, both configs
    python benchmarks/train_step.py --cpu-scaled     # CPU (the default without a GPU): narrow models, small clips

On a CPU the full shapes do not fit in time or memory: ``--cpu-scaled`` keeps the architectures' structure at a
width of 128, 4 layers and 9-frame 64x64 clips, measures in float32 (no bf16 peak applies) and reports the process's
resident-memory high-water mark instead of an allocator peak.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dit_step import gemm_flops_per_second, sync  # noqa: E402

from itryon.config import load_config  # noqa: E402
from itryon.data.temporal import latent_frame_count  # noqa: E402
from itryon.models import BackboneInputs, DiffusersWanVACE, WanDiT, dit_forward_flops  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {"wan2.1_1.3b": "configs/model/wan2.1_1.3b.yaml", "wan2.1_vace_1.3b": "configs/model/wan2.1_vace_1.3b.yaml"}
CLIPS = {"81x576x768": (81, 576, 768), "81x480x832": (81, 480, 832)}
CPU_CLIPS = {"9x64x64": (9, 64, 64)}
# dense bf16 tensor-core peaks (no sparsity), FLOP/s
PEAKS = {"H100 SXM": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}
VAE_CHANNELS, VAE_SPATIAL, VAE_TEMPORAL, TEXT_LEN = 16, 8, 4, 512


def dense_peak(device: torch.device) -> tuple[str, float | None]:
    if device.type != "cuda":
        return platform.processor() or "cpu", None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAKS, key=len, reverse=True):
        if all(part in name for part in key.split()):
            return name, PEAKS[key]
    return name, None


def shapes(config_path: str, scaled: bool) -> dict:
    cfg = load_config(ROOT / config_path)
    shape = {k: cfg[k] for k in ("dim", "ffn_dim", "num_layers", "num_heads", "text_dim", "freq_dim", "patch_size")}
    shape["vace_layers"] = list(cfg.get("vace_layers") or [])
    if scaled:
        shape.update(dim=128, ffn_dim=512, num_layers=4, num_heads=2, text_dim=64, freq_dim=64)
        shape["vace_layers"] = [0, 2] if shape["vace_layers"] else []
    return shape


def build(shape: dict, family: str, checkpointing: bool) -> torch.nn.Module:
    vace = {"vace_layers": shape["vace_layers"], "vace_in_channels": 2 * VAE_CHANNELS + VAE_SPATIAL**2}
    common = {k: shape[k] for k in ("dim", "ffn_dim", "num_layers", "num_heads", "text_dim", "freq_dim", "patch_size")}
    if family == "diffusers":
        return DiffusersWanVACE(
            in_channels=VAE_CHANNELS, out_channels=VAE_CHANNELS, gradient_checkpointing=checkpointing, **common, **vace
        )
    if not shape["vace_layers"]:
        vace = {}
    model = WanDiT(
        in_channels=VAE_CHANNELS, out_channels=VAE_CHANNELS, gradient_checkpointing=checkpointing, **common, **vace
    )
    with torch.no_grad():
        model.head.proj.weight.normal_(0, 0.02)  # a fresh Wan head is zero: give the backward its full work
    return model


def memory_estimate(model: torch.nn.Module, shape: dict, tokens: int, checkpointing: bool) -> dict[str, float]:
    """Analytic bytes: fp32 weights + grads + AdamW moments (16 per parameter), and bf16 activations kept for the
    backward: per block about ``tokens * (34 * dim + 5 * ffn_dim)`` bytes (self- and cross-attention inputs and
    outputs, norms, the FFN's hidden layer; flash/SDPA attention keeps no score matrix), or with checkpointing the
    block inputs (``2 * tokens * dim``) plus one block recomputed."""
    params = sum(p.numel() for p in model.parameters())
    blocks = shape["num_layers"] + len(shape["vace_layers"])
    per_block = tokens * (34 * shape["dim"] + 5 * shape["ffn_dim"])
    activations = blocks * 2 * tokens * shape["dim"] + per_block if checkpointing else blocks * per_block
    return {
        "states_gb": 16 * params / 1e9,
        "activations_gb": activations / 1e9,
        "total_gb": (16 * params + activations) / 1e9,
    }


def run_case(model, family, latents, context, control, device, dtype, warmup, repeats):
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    timestep = torch.full((latents.shape[0],), 500.0, device=device)
    inputs = BackboneInputs(context=context, vace_context=control)

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = model(latents, timestep, inputs)
            loss = (out.float() - latents).square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 1e9
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB, high-water mark of the process
    return statistics.median(times), peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cpu-scaled", action="store_true", help="scaled-down models and clips (default on a CPU)")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--clips", default=None, help=f"comma-separated of {list(CLIPS)} (scaled: {list(CPU_CLIPS)})")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--no-diffusers", action="store_true", help="skip diffusers' WanVACETransformer3DModel")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/train_step[_cpu].json)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    scaled = args.cpu_scaled or device.type == "cpu"
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    clips = CPU_CLIPS if scaled else CLIPS
    chosen = args.clips.split(",") if args.clips else list(clips)
    gpu_name, peak = dense_peak(device)
    gemm = gemm_flops_per_second(device, dtype, 1024 if device.type == "cpu" else 8192)
    rows = []
    for config in args.configs.split(","):
        shape = shapes(CONFIGS[config], scaled)
        for clip in chosen:
            frames, height, width = clips[clip]
            f = latent_frame_count(frames, VAE_TEMPORAL)
            h, w = height // VAE_SPATIAL, width // VAE_SPATIAL
            g = torch.Generator().manual_seed(0)
            latents = torch.randn(1, VAE_CHANNELS, f, h, w, generator=g).to(device)
            context = torch.randn(1, TEXT_LEN if not scaled else 64, shape["text_dim"], generator=g).to(device)
            control = None
            if shape["vace_layers"]:
                control = torch.randn(1, 2 * VAE_CHANNELS + VAE_SPATIAL**2, f, h, w, generator=g).to(device)
            pt, ph, pw = shape["patch_size"]
            tokens = (f // pt) * (h // ph) * (w // pw)
            families = ["itryon"] + (["diffusers"] if shape["vace_layers"] and not args.no_diffusers else [])
            for family in families:
                for checkpointing in (False, True):
                    torch.manual_seed(0)
                    model = build(shape, family, checkpointing)
                    flops = 3 * dit_forward_flops(
                        {**shape, "in_channels": VAE_CHANNELS, "out_channels": VAE_CHANNELS, "vace_in_channels": 96},
                        latents.shape,
                        context.shape[1],
                        with_vace=bool(shape["vace_layers"]),
                    )
                    try:
                        seconds, memory = run_case(
                            model, family, latents, context, control, device, dtype, args.warmup, args.repeats
                        )
                        error = None
                    except torch.OutOfMemoryError as exc:  # a row that does not fit says so instead of ending the run
                        seconds, memory, error = float("nan"), float("nan"), str(exc).splitlines()[0]
                    estimate = memory_estimate(model, shape, tokens, checkpointing)
                    rows.append(
                        {
                            "config": config, "clip": clip, "backbone": family, "checkpointing": checkpointing,
                            "tokens": tokens, "step_s": seconds, "tokens_per_s": tokens / seconds,
                            "flops_per_step": flops, "achieved_flops": flops / seconds,
                            "mfu_dense_peak": flops / seconds / peak if peak else None,
                            "mfu_measured_gemm": flops / seconds / gemm, "peak_memory_gb": memory,
                            "estimate_gb": estimate, "error": error,
                        }
                    )  # fmt: skip
                    del model
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
    for row in rows:
        if row["backbone"] == "diffusers":
            ours = next(
                r for r in rows
                if r["backbone"] == "itryon" and (r["config"], r["clip"], r["checkpointing"]) == (row["config"], row["clip"], row["checkpointing"])
            )  # fmt: skip
            ours["step_vs_diffusers"] = ours["step_s"] / row["step_s"]

    header = f"{'config':<17} {'clip':<11} {'backbone':<9} {'ckpt':<5} {'step s':>8} {'tok/s':>9} {'MFU peak':>8} {'MFU gemm':>8} {'peak GB':>8} {'est GB':>7} {'vs diff':>7}"
    print(
        f"device: {gpu_name}; dtype {str(dtype).removeprefix('torch.')}; measured GEMM {gemm / 1e12:.1f} TFLOP/s; dense peak {peak / 1e12 if peak else float('nan'):.0f} TFLOP/s"
    )
    print(header)
    for r in rows:
        mfu = f"{r['mfu_dense_peak']:.1%}" if r["mfu_dense_peak"] else "n/a"
        ratio = f"{r['step_vs_diffusers']:.2f}" if "step_vs_diffusers" in r else ""
        print(
            f"{r['config']:<17} {r['clip']:<11} {r['backbone']:<9} {str(r['checkpointing']):<5} {r['step_s']:>8.3f} "
            f"{r['tokens_per_s']:>9.0f} {mfu:>8} {r['mfu_measured_gemm']:>8.1%} {r['peak_memory_gb']:>8.2f} "
            f"{r['estimate_gb']['total_gb']:>7.2f} {ratio:>7}"
        )
    out = Path(args.out or ROOT / "benchmarks/results" / ("train_step_cpu.json" if scaled else "train_step.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": " ".join(["python benchmarks/train_step.py", *(argv if argv is not None else sys.argv[1:])]),
        "device": gpu_name, "dtype": str(dtype), "scaled": scaled, "measured_gemm_flops": gemm,
        "dense_peak_flops": peak, "torch": torch.__version__, "rows": rows,
    }  # fmt: skip
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
