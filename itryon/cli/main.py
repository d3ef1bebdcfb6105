"""The ``itryon`` command: ``itryon <train|synth|convert|preprocess|cache|infer|export|demo|evaluate|ablate> ...``.

Only the chosen command's module is imported, so that ``itryon --help`` and light commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "train": ("itryon.cli.train", "train a model from a YAML config"),
    "synth": ("itryon.cli.synth", "write a split of the synthetic interactive try-on world"),
    "convert": ("itryon.cli.convert", "turn a folder-per-modality try-on dataset into a manifest"),
    "preprocess": ("itryon.cli.preprocess", "turn person videos and garment images into a manifest split"),
    "cache": ("itryon.cli.cache", "precompute VAE latents and text embeddings of a split"),
    "infer": ("itryon.cli.infer", "generate videos for a manifest with a trained run"),
    "export": ("itryon.cli.export", "write a run as a diffusers pipeline folder (ITryOnPipeline)"),
    "demo": ("itryon.cli.demo", "try a run in the browser (Gradio)"),
    "evaluate": ("itryon.cli.evaluate", "compute metrics on folders of videos"),
    "ablate": ("itryon.cli.ablate", "train and score experiments x seeds, tabulate with confidence intervals"),
}


def _overview() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="itryon", description="Interactive video virtual try-on.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        _overview().parse_args(argv)  # prints the overview (--help) or the usage error, and exits
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(
        prog=f"itryon {name}", description=(module.__doc__ or help_text).strip().splitlines()[0]
    )
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    args.command_line = ["itryon", name, *rest]
    return int(module.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
