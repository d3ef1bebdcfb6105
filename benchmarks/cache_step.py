"""Training-step time with and without the latent / text-embedding cache (``itryon cache``).

The model is the default method on the tiny backbone, but with Wan's real encoder architectures in small random
versions (diffusers' ``AutoencoderKLWan`` as the VAE, an UMT5 encoder as the text encoder), so that the step
pays what a real one pays for encoding: the target video, the agnostic video twice (kept and generated
regions), the garment, and every caption. With the cache those calls become lookups. Steps are forward +
backward + optimiser step on the same batches in both modes, after warm-up; the losses of the first batch must
agree. Prints a table and writes ``benchmarks/results/cache_step.json``.

    python benchmarks/cache_step.py [--clips 8] [--steps 6] [--vae-dim 32]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from itryon.cache.build import build_cache, use_cache  # noqa: E402
from itryon.cache.lookup import detach  # noqa: E402
from itryon.config import instantiate  # noqa: E402
from itryon.data.contract import collate  # noqa: E402
from itryon.data.synthetic import write_split  # noqa: E402
from itryon.training.run import prepare_config  # noqa: E402

CONFIG = """defaults:
  - /experiment/synthetic_disk
model:
  backbone: {{in_channels: 16, out_channels: 16, vace_in_channels: 96}}
  vae: {{_replace_: true, _target_: itryon.models.WanVAE, path: {vae}, spatial_compression: 8, temporal_compression: 4}}
  conditioning:
    adapters:
      caption:
        encoder: {{_replace_: true, _target_: itryon.models.T5TextEncoder, path: {t5}, max_length: 64}}
data:
  train: {{manifest: {data}/train.jsonl}}
  val: {{manifest: {data}/train.jsonl}}
  test: {{manifest: {data}/train.jsonl}}
"""


def encoders(root: Path, vae_dim: int) -> tuple[Path, Path]:
    from diffusers import AutoencoderKLWan
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=vae_dim,
        z_dim=16,
        dim_mult=[1, 2, 2, 2],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * 16,
        latents_std=[1.0] * 16,
    )
    vae.save_pretrained(root / "vae")
    words = sorted(
        {
            w
            for w in "a person with light dark skin and hair wears lifts pulls stretches tugs the hem zipper collar fabric".split()
        }
    )
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(root / "t5" / "tokenizer")
    UMT5EncoderModel(
        UMT5Config(vocab_size=len(vocab), d_model=64, d_kv=16, d_ff=256, num_layers=4, num_heads=4)
    ).save_pretrained(root / "t5" / "text_encoder")
    return root / "vae", root / "t5"


def steps(module, optimizer, batches, count: int) -> tuple[list[float], float]:
    times, first = [], None
    for i in range(count):
        batch = batches[i % len(batches)]
        torch.manual_seed(i)
        start = time.perf_counter()
        loss = module.diffusion_loss(batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
        first = float(loss.detach()) if first is None else first
    return times, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--vae-dim", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/cache_step.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_split(root / "data", "train", args.clips, seed=0)
        vae, t5 = encoders(root, args.vae_dim)
        (root / "bench.yaml").write_text(CONFIG.format(vae=vae, t5=t5, data=root / "data"))
        cfg = prepare_config(root / "bench.yaml")
        L.seed_everything(0, verbose=False)
        datamodule = instantiate(cfg.data, "data")
        module = instantiate(cfg.model, "model")
        dataset = datamodule.train_set.dataset
        batches = [collate([dataset[i], dataset[(i + 1) % len(dataset)]]) for i in range(0, len(dataset), 2)]
        state = {k: v.clone() for k, v in module.state_dict().items()}
        results = {}
        for mode in ("without cache", "with cache"):
            module.load_state_dict(state)
            optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
            build_seconds = None
            if mode == "with cache":
                start = time.perf_counter()
                build_cache(module, dataset, root / "cache", progress=False)
                build_seconds = time.perf_counter() - start
                cache = use_cache(module, dataset, root / "cache", "require")
            module.train()
            steps(module, optimizer, batches, args.warmup)
            module.load_state_dict(state)
            optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
            times, first = steps(module, optimizer, batches, args.steps)
            results[mode] = {
                "median_step_s": statistics.median(times),
                "steps": times,
                "first_loss": first,
                "cache_build_s": build_seconds,
            }
            if mode == "with cache":
                results[mode].update(entries=len(cache), hits=cache.hits, misses=cache.misses)
                detach(module.vae)
    base, cached = results["without cache"], results["with cache"]
    speedup = base["median_step_s"] / cached["median_step_s"]
    print(
        f"cache_step: {args.clips} clips of 17x48x64, batch 2, WanVAE base_dim {args.vae_dim} + UMT5 (4 layers), {torch.get_num_threads()} thread(s)"
    )
    print(f"{'mode':<16}{'median step s':>15}{'first loss':>14}{'build s':>10}")
    for mode, r in results.items():
        build = "-" if r["cache_build_s"] is None else f"{r['cache_build_s']:.2f}"
        print(f"{mode:<16}{r['median_step_s']:>15.3f}{r['first_loss']:>14.6f}{build:>10}")
    print(
        f"speed-up {speedup:.2f}x; cache {cached['entries']} entries, {cached['hits']} hits, {cached['misses']} misses; same first loss: {abs(base['first_loss'] - cached['first_loss']) <= 1e-5 * abs(base['first_loss'])}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "args": vars(args),
                "results": results,
                "speedup": speedup,
                "torch": torch.__version__,
                "python": platform.python_version(),
                "threads": torch.get_num_threads(),
            },
            indent=2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
