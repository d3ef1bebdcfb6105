"""What every part of the config system shares: its error, the config folder and the reserved keys."""

from __future__ import annotations

from pathlib import Path

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "configs"
RESERVED = ("_target_", "_partial_", "_replace_")
COMMAND_LINE = "command line"


class ConfigError(ValueError):
    """A configuration cannot be composed, validated or instantiated; the message names the key and file."""


def join(a: str, b: str) -> str:
    """Dotted keys: ``join("model", "lr") == "model.lr"``; empty parts are left out."""
    return ".".join(x for x in (a, b) if x)
