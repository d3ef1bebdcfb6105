"""Every ``python train.py ...`` command in the README and the docs composes and validates (``--print-config``);
the errors the docs show (``$ python train.py ...`` followed by ``error: ...``) are the errors the command prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from itryon.cli.train import main

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "README.md"]
OPTIONS_WITH_VALUE = ("--config", "--resume")
FLAGS = ("--print-config", "--trust-config")


def _lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` with backslash-continued lines joined."""
    out, pending, start = [], "", 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def _arguments(text: str) -> list[str]:
    """The train.py arguments of one command: options, their values and ``key=value`` overrides, up to the first
    word that is none of them (prose after the command) or a comment."""
    words = shlex.split(text.split("python train.py", 1)[1], comments=True)
    args, expect_value = [], False
    for word in words:
        if expect_value:
            args.append(word)
            expect_value = False
        elif word in OPTIONS_WITH_VALUE:
            args.append(word)
            expect_value = True
        elif word in FLAGS or "=" in word:
            args.append(word)
        else:
            break
    return args


def _commands() -> list[tuple[str, list[str], str | None]]:
    """``(where, arguments, expected error or None)`` for every command in the docs."""
    found = []
    for path in DOCS:
        lines = _lines(path)
        for i, (number, line) in enumerate(lines):
            for text in re.findall(r"`([^`]*python train\.py[^`]*)`", line) or (
                [line] if "python train.py" in line else []
            ):
                where = f"{path.relative_to(REPO)}:{number}"
                shown = lines[i + 1][1] if text.lstrip().startswith("$") and i + 1 < len(lines) else ""
                expected = shown.split("...")[0].rstrip(", ") if shown.startswith("error:") else None
                found.append((where, _arguments(text), expected))
    return found


COMMANDS = _commands()
PLACEHOLDER = re.compile(r"<[^>]*>|^FILE$|\.\.\.")  # e.g. --resume runs/<name>/<timestamp>, --config FILE
RUNNABLE = [c for c in COMMANDS if not any(PLACEHOLDER.search(a) for a in c[1])]


def test_the_docs_hold_the_commands_this_test_runs() -> None:
    assert len(RUNNABLE) >= 8, COMMANDS
    assert any(expected for _, _, expected in RUNNABLE)  # the shown errors are checked too
    assert any("wan2.1_vace_1.3b_itryon.yaml" in " ".join(args) for _, args, _ in RUNNABLE)


@pytest.mark.parametrize("where, args, expected", RUNNABLE, ids=[c[0] for c in RUNNABLE])
def test_each_documented_command_prints_its_config(where, args, expected, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)  # the docs give paths from the repository root
    code = main([*args, "--print-config"])
    captured = capsys.readouterr()
    if expected is None:
        assert code == 0, f"{where}: python train.py {' '.join(args)}\n{captured.err}"
        assert "_target_: itryon.training.TryOnModule" in captured.out
    else:
        assert code == 2 and captured.err.startswith(expected), f"{where}: shows {expected!r}, prints {captured.err!r}"
