"""A sample grid of a trained run for people to look at: one row per clip at its most interactive frame.

Columns: the agnostic input (what the model sees of the person), the in-shop garment, the hand prior, the model's
prediction, the ground truth, and the absolute error. Clips come from the run's validation set (``--split`` and
``--clips`` to change), generated with the run's sampler and noise seed ``--seed + batch``.

    python benchmarks/sample_grid.py --run runs/study/<stamp> --out docs/images/study_samples.png --clips 6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing
from itryon.config import instantiate  # noqa: E402
from itryon.data.contract import collate  # noqa: E402
from itryon.training.run import load_run_config, load_run_module  # noqa: E402

COLUMNS = ("input", "garment", "hand prior", "prediction", "ground truth", "|error|")


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` in [-1, 1] -> ``(H, W, 3)`` uint8."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0)


def resize_like(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(image[None], size=(height, width), mode="nearest")[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run folder (config.yaml, weights/model.safetensors)")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--clips", type=int, default=6, help="rows (clips) in the grid (default 6)")
    parser.add_argument("--split", default="val", choices=["train", "val"], help="the run's data split (default val)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--scale", type=int, default=2, help="nearest-neighbour upscaling of the grid (default 2)")
    args = parser.parse_args(argv)

    run = Path(args.run)
    module = load_run_module(run)
    data = instantiate(load_run_config(run).data, "data")
    data.setup("fit")
    dataset = data.val_set if args.split == "val" else data.train_set
    if args.clips > len(dataset):
        raise SystemExit(f"--clips {args.clips}: the run's {args.split} split has {len(dataset)} clips")
    batch = collate([dataset[i] for i in range(args.clips)])
    with torch.no_grad():
        pred = module.generate(batch, seed=args.seed)
    rows = []
    for i in range(args.clips):
        frame = int(batch["interaction"][i].argmax()) if "interaction" in batch else batch["video"].shape[2] // 2
        height, width = batch["video"].shape[-2:]
        cells = [
            batch["agnostic"][i, :, frame],
            resize_like(batch["garment"][i], height, width),
            batch["hand_prior"][i, :, frame] if "hand_prior" in batch else torch.zeros(3, height, width),
            pred[i, :, frame],
            batch["video"][i, :, frame],
            (pred[i, :, frame] - batch["video"][i, :, frame]).abs() - 1.0,  # 0 error is black
        ]
        rows.append(torch.cat([to_uint8(c) for c in cells], dim=1))
    grid = torch.cat(rows, dim=0).numpy()
    image = Image.fromarray(grid)
    image = image.resize((image.width * args.scale, image.height * args.scale), Image.NEAREST)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    print(f"wrote {out} ({args.clips} clips; columns: {' | '.join(COLUMNS)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
