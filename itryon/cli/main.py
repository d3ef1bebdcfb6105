"""The ``itryon`` command: ``itryon <train|synth|evaluate> ...``."""

from __future__ import annotations

import argparse
import importlib

COMMANDS = {
    "train": ("itryon.cli.train", "train a model from a YAML config"),
    "synth": ("itryon.cli.synth", "write a split of the synthetic interactive try-on world"),
    "convert": ("itryon.cli.convert", "turn a folder-per-modality try-on dataset into a manifest"),
    "infer": ("itryon.cli.infer", "generate videos for a manifest with a trained run"),
    "evaluate": ("itryon.cli.evaluate", "compute metrics on folders of videos"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="itryon", description="Interactive video virtual try-on.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().splitlines()[0])
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    return int(args._run(args))


if __name__ == "__main__":
    raise SystemExit(main())
