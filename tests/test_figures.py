"""docs/figures.md against the benchmarks' last print-outs (benchmarks/results/, written by `benchmarks.record`).

Every figure docs/figures.md reports as measured must be in the print-out of the command it names: a headline
row's bold figures in its own command's; a paragraph's bold figures in those of the commands it names; a table
under a paragraph, every number of every row in the rows of its command's print-out that start with the same
cells (Q, C and scenario, as far as they are the same). So re-running a benchmark and not updating the page, or
editing a figure by hand, fails here, naming the file to copy from. Figures of earlier code ("before") are not
bold and name their commit; the pages elsewhere quote figures.md (tests/test_docs.py checks them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.record import measured, result_file

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures.md"
COMMAND = re.compile(r"`(python -m benchmarks\.[^`]+)`")
BOLD = re.compile(r"\*\*(.+?)\*\*")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
# Measured by hand, not by a benchmark: the demo's wall-clock time on a clean clone and the end-to-end backfill
# test's counts (`make test-scale` asserts them itself: 1 accepted copy per image set, 0 by a second run).
BY_HAND = {"git clone ... && time make demo", "make test-scale"}
# A paragraph about earlier code names the commit it ran on ("before": not re-measured, and not bold).
EARLIER_CODE = re.compile(r"\b(?:at|commit) [0-9a-f]{7,40}\b")


@dataclass(frozen=True)
class Quoted:
    """Figures docs/figures.md quotes from the print-outs of `commands`: `text` is the line they are on."""

    line: int
    text: str
    commands: tuple[str, ...]
    figures: tuple[str, ...]
    table_row: bool
    earlier_code: bool = False

    def __str__(self) -> str:
        return f"docs/figures.md:{self.line}"


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def bold_figures(text: str) -> tuple[str, ...]:
    return tuple(f for b in BOLD.findall(text) for f in NUMBER.findall(b))


def blocks() -> list[list[tuple[int, str]]]:
    """docs/figures.md's paragraphs, tables and headings, each its numbered lines."""
    found: list[list[tuple[int, str]]] = [[]]
    for number, line in enumerate(FIGURES.read_text().splitlines(), start=1):
        kind = line[:1] if line[:1] in "#|" else "text"
        if not line.strip() or (
            found[-1] and kind != (found[-1][-1][1][:1] if found[-1][-1][1][:1] in "#|" else "text")
        ):
            found.append([])
        if line.strip():
            found[-1].append((number, line))
    return [block for block in found if block]


def quoted() -> list[Quoted]:
    """Each line of docs/figures.md with figures it quotes, and the commands whose print-outs hold them."""
    found: list[Quoted] = []
    paragraph_commands: tuple[str, ...] = ()  # the paragraph's, and the table's right under it
    earlier = False  # the paragraph is about earlier code, named by its commit: not re-measured
    for block in blocks():
        if not block[0][1].startswith("|"):
            earlier = bool(EARLIER_CODE.search(" ".join(line for _, line in block)))
            paragraph_commands = () if earlier else tuple(c for _, line in block for c in COMMAND.findall(line))
            found += [
                Quoted(number, line, paragraph_commands, bold_figures(line), table_row=False, earlier_code=earlier)
                for number, line in block
                if bold_figures(line)
            ]
            continue
        (_, header), _, *rows = block
        headline = cells(header)[-1] == "command"  # each row names its own command ("same": the row above's)
        row_commands: tuple[str, ...] = ()
        for number, line in rows:
            if headline:
                how = cells(line)[-1].strip("`")
                row_commands = tuple(COMMAND.findall(line)) if how != "same" else row_commands
                found.append(Quoted(number, line, row_commands, bold_figures(line), table_row=False))
            else:
                figures = tuple(f for cell in cells(line)[1:] for f in NUMBER.findall(cell))  # [0]: the row's name
                found.append(Quoted(number, line, paragraph_commands, figures, table_row=True, earlier_code=earlier))
        paragraph_commands, earlier = (), False
    return found


QUOTED = quoted()


def rows_like(row: list[str], printed: str) -> str:
    """The print-out's table rows that start with the most of `row`'s first three cells (all of it if none)."""
    printed_rows = [cells(line) for line in printed.splitlines() if line.startswith("|")]
    for width in (3, 2, 1):
        same = [r for r in printed_rows if [c.replace("**", "") for c in row[:width]] == r[:width]]
        if same:
            return "\n".join(" ".join(r) for r in same)
    return printed


def test_figures_md_quotes_figures_from_benchmarks() -> None:
    """The parse finds what the page holds: the headline rows, the scale, read budgets, lanes and metadata tables."""
    commands = {c for q in QUOTED for c in q.commands}
    assert {"python -m benchmarks.burst --breakdown", "python -m benchmarks.scale --table",
            "python -m benchmarks.scale --reads", "python -m benchmarks.scale --lanes",
            "python -m benchmarks.metadata"} <= commands  # fmt: skip
    assert sum(q.table_row and bool(q.commands) for q in QUOTED) >= 24 + 14 + 7 + 4


@pytest.mark.parametrize("figure", [q for q in QUOTED if q.commands], ids=str)
def test_a_figure_is_in_its_benchmarks_last_print_out(figure: Quoted) -> None:
    missing_files = [c for c in figure.commands if not result_file(c).exists()]
    assert not missing_files, f"{figure}: no print-out of {missing_files} in benchmarks/results/: run it"
    printed = "\n".join(measured(result_file(c)) for c in figure.commands)
    where = rows_like(cells(figure.text), printed) if figure.table_row else printed
    held = set(NUMBER.findall(where))
    absent = [f for f in figure.figures if f not in held]
    files = ", ".join(str(result_file(c).relative_to(ROOT)) for c in figure.commands)
    assert not absent, f"{figure} quotes {absent}, which {files} does not hold: copy the figures from it"


def test_every_figure_names_what_measured_it() -> None:
    """A bold figure with no benchmark command is measured by hand, and says how (BY_HAND)."""
    unsourced = [
        str(q)
        for q in QUOTED
        if q.figures and not q.commands and not any(how in q.text for how in BY_HAND) and not q.earlier_code
    ]
    assert not unsourced, f"figures with no command that measured them: {unsourced}"


def test_the_bench_targets_run_every_command_figures_md_quotes() -> None:
    """`make bench`, `bench-scale`, `bench-lanes` (and the targets the page names) re-measure the whole page."""
    made = {
        line.strip().replace("$(PY)", "python")
        for line in (ROOT / "Makefile").read_text().splitlines()
        if line.startswith("\t$(PY) -m benchmarks.")
    }
    quoted_commands = {c for q in QUOTED for c in q.commands}
    assert quoted_commands <= made, (
        f"commands docs/figures.md quotes that no make target runs: {quoted_commands - made}"
    )
