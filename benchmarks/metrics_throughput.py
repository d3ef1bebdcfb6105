"""Videos per second for VFID (I3D + 3D-ResNeXt-101) + SSIM + LPIPS over a folder: ours vs a reference loop.

The reference loop does what the field's published evaluation scripts do: every metric is its own pass
over the folders, VFID decodes a video once per 10-frame clip and resizes frame by frame, clips go through
the networks four at a time, statistics are ``np.cov`` + ``scipy.linalg.sqrtm``, SSIM is
``skimage.metrics.structural_similarity`` per frame and LPIPS the ``lpips`` package per frame. Ours is
``itryon evaluate``'s loop: one decode per video, batched resizing and networks (channels-last), float64
streaming statistics. Both use the same randomly initialised networks (real weights cannot be downloaded
here), saved in the reference file layouts and loaded through the same code. Prints a table and writes
``benchmarks/results/metrics_throughput.json``.

    python benchmarks/metrics_throughput.py [--videos 4] [--frames 20] [--height 192] [--width 256]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
from scipy import linalg
from skimage.metrics import structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from itryon.cli.evaluate import evaluate, match_videos
from itryon.data.synthetic import ClipSpec, generate_clip
from itryon.data.video_io import read_video, write_video
from itryon.metrics.i3d import InceptionI3d
from itryon.metrics.lpips_net import BACKBONE_FILES, build_lpips
from itryon.metrics.registry import build_metric
from itryon.metrics.resnext3d import resnext101
from itryon.metrics.vfid import i3d_network, resnext_network

TARGET_SPEEDUP = 5.0
CLIP = 10


def make_folders(root: Path, videos: int, frames: int, height: int, width: int) -> None:
    g = np.random.default_rng(0)
    for i in range(videos):
        clip = generate_clip("val", i, 0, ClipSpec(num_frames=frames, height=height, width=width))
        video = clip["video"].transpose(1, 2, 3, 0)  # (T, H, W, 3)
        noisy = np.clip(
            clip["counterfactual"].transpose(1, 2, 3, 0).astype(np.int16) + g.integers(-12, 13, video.shape), 0, 255
        ).astype(np.uint8)
        write_video(root / "gt" / f"clip{i:03d}.mp4", video)
        write_video(root / "pred" / f"clip{i:03d}.mp4", noisy)


def make_weights(folder: Path) -> None:
    torch.manual_seed(0)
    torch.save(InceptionI3d().state_dict(), folder / "i3d.pt")
    torch.save(
        {"arch": "resnext-101", "state_dict": {f"module.{k}": v for k, v in resnext101().state_dict().items()}},
        folder / "resnext-101.pth",
    )
    torch.save(torchvision.models.alexnet().state_dict(), folder / BACKBONE_FILES["alex"])


# ---------------------------------------------------------------- the reference loop


def reference_vfid(net: torch.nn.Module, folders: list[Path]) -> float:
    to_tensor, resize = T.ToTensor(), T.Resize((224, 224), antialias=True)
    feats = []
    for folder in folders:
        clips = [(p, k) for p in sorted(folder.glob("*.mp4")) for k in range(read_video(p).shape[0] // CLIP)]
        out = []
        for start in range(0, len(clips), 4):
            batch = []
            for path, k in clips[start : start + 4]:
                frames = read_video(path).numpy()[k * CLIP : (k + 1) * CLIP]  # one decode per clip
                batch.append(torch.stack([resize(to_tensor(f[..., ::-1].copy())) for f in frames], dim=1))  # BGR
            with torch.no_grad():
                out.append(net(torch.stack(batch) * 2 - 1).double().numpy())
        feats.append(np.concatenate(out))
    (a, b) = feats
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def reference_ssim(pairs) -> float:
    per_video = []
    for _, pred, gt in pairs:
        p, g = read_video(pred).numpy(), read_video(gt).numpy()
        scores = [
            structural_similarity(
                p[t] / 255.0,
                g[t] / 255.0,
                data_range=1.0,
                channel_axis=2,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
            )
            for t in range(len(p))
        ]
        per_video.append(np.mean(scores))
    return float(np.mean(per_video))


def reference_lpips(pairs, net: torch.nn.Module) -> float:
    per_video = []
    for _, pred, gt in pairs:
        p, g = read_video(pred), read_video(gt)
        with torch.no_grad():
            scores = [
                float(
                    net(
                        p[t].permute(2, 0, 1)[None].float() / 127.5 - 1, g[t].permute(2, 0, 1)[None].float() / 127.5 - 1
                    )
                )
                for t in range(len(p))
            ]
        per_video.append(np.mean(scores))
    return float(np.mean(per_video))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4, help="videos per update in our loop")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "metrics_throughput.json"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_folders(root, args.videos, args.frames, args.height, args.width)
        (root / "weights").mkdir()
        make_weights(root / "weights")
        pairs = match_videos(root / "pred", root / "gt")
        names = ("vfid_i3d", "vfid_resnext", "ssim", "lpips")

        start = time.perf_counter()
        metrics = {n: build_metric(n, weights_dir=root / "weights") for n in names}
        ours = evaluate(pairs, metrics, batch_size=args.batch_size, progress=False)
        t_ours = time.perf_counter() - start

        start = time.perf_counter()
        ref = {
            "vfid_i3d": reference_vfid(i3d_network(root / "weights").eval(), [root / "pred", root / "gt"]),
            "vfid_resnext": reference_vfid(resnext_network(root / "weights").eval(), [root / "pred", root / "gt"]),
            "ssim": reference_ssim(pairs),
            "lpips": reference_lpips(pairs, build_lpips("alex", root / "weights")),
        }
        t_ref = time.perf_counter() - start

    n = len(pairs)
    print(
        f"{n} video pairs of {args.frames} frames at {args.width}x{args.height}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'metric':<14}{'ours':>16}{'reference':>16}{'rel. diff':>12}")
    rows = {}
    for k in names:
        diff = abs(ours[k] - ref[k]) / max(abs(ref[k]), 1e-12)
        rows[k] = {"ours": ours[k], "reference": ref[k], "relative_difference": diff}
        print(f"{k:<14}{ours[k]:>16.6g}{ref[k]:>16.6g}{diff:>12.2e}")
    speedup = t_ref / t_ours
    print(
        f"{'videos/s':<14}{n / t_ours:>16.4f}{n / t_ref:>16.4f}   speedup {speedup:.2f}x (target >= {TARGET_SPEEDUP:.0f}x)"
    )
    record = {
        "videos": n, "frames": args.frames, "height": args.height, "width": args.width,
        "seconds": {"ours": t_ours, "reference": t_ref}, "videos_per_second": {"ours": n / t_ours, "reference": n / t_ref},
        "speedup": speedup, "target_speedup": TARGET_SPEEDUP, "metrics": rows,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "weights": "random initialisation in the reference layouts (real weights are not downloadable here)",
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
