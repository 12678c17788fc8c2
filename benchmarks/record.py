"""Each benchmark's last print-out, kept in benchmarks/results/ under the command that printed it.

docs/figures.md quotes these files and tests/test_figures.py checks every figure it quotes against them, so a
figure cannot outlive the run that measured it. A file starts with the command and the commit it ran on (and
whether the tree had changes), the date, the Python and the load: the machine is shared, so its load says how
far the seconds can be trusted.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

RESULTS = Path(__file__).resolve().parent / "results"
PROGRAM = "python -m "
# A header line of a result file: what produced it, not what it measured.
HEADER = ("$ ", "# ")


def result_file(command: str) -> Path:
    """Where the print-out of `command` (as docs/figures.md names it: `python -m benchmarks.X --flag value`) is."""
    if not command.startswith(PROGRAM + "benchmarks."):
        raise ValueError(f"not a benchmark command: {command!r}")
    words = shlex.split(command.removeprefix(PROGRAM).removeprefix("benchmarks."))
    return RESULTS / (re.sub(r"[^A-Za-z0-9.]+", "-", " ".join(words)).strip("-") + ".txt")


def measured(path: Path) -> str:
    """A result file's print-out without its header."""
    lines = path.read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith(HEADER))


class _Tee:
    """Writes to the terminal and keeps a copy: a benchmark prints as it goes, for hours at a time."""

    def __init__(self, terminal: TextIO) -> None:
        self.terminal = terminal
        self.kept: list[str] = []

    def write(self, text: str) -> int:
        self.kept.append(text)
        return self.terminal.write(text)

    def flush(self) -> None:
        self.terminal.flush()


def _commit() -> str:
    def git(*args: str) -> str:
        root = RESULTS.parent.parent
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=root, check=False).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    # Changes to the code, not to the print-outs this and earlier runs wrote.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results").strip()
    return f"{head} with uncommitted changes" if changed else head


def run(main: Callable[[], int | None]) -> int:
    """Runs a benchmark's `main` as its module's `__main__`, keeping what it prints if it ends well."""
    spec = sys.modules["__main__"].__spec__
    module = spec.name.removesuffix(".__main__") if spec else Path(sys.argv[0]).stem
    command = shlex.join([*PROGRAM.split(), module, *sys.argv[1:]])
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        code = main() or 0
    if code == 0:
        RESULTS.mkdir(exist_ok=True)
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        header = (
            f"$ {command}\n# commit {_commit()}, {now}, Python {platform.python_version()}, "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end\n"
        )
        result_file(command).write_text(header + "".join(tee.kept))
    return code
