"""Command-line options that several ``itryon`` commands share."""

from __future__ import annotations

import argparse


def add_trust_config(parser: argparse.ArgumentParser, what: str = "the run's config.yaml") -> None:
    """``--trust-config``: lift the rule that a config may only build classes of itryon and its libraries."""
    parser.add_argument(
        "--trust-config",
        action="store_true",
        help=f"let {what} build any _target_, not only classes of itryon and the libraries it builds on "
        "(also: ITRYON_TRUST_CONFIG=1)",
    )
