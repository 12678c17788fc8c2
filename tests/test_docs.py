"""The documentation holds together: every relative link and anchor resolves; the configuration page documents
exactly the settings the CDK app accepts, the alarm runbook exactly the alarms the stack creates, the errors
page exactly the errors an execution can end with; figures restated outside docs/figures.md agree with it.
(Every documented command is parsed in tests/test_doc_commands.py.)"""

from __future__ import annotations

import fnmatch
import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from stack_app import resources, synthesize

from copier import errors
from infra.settings import SETTING_NAMES

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation but '-' and '_' dropped, spaces to '-', repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:: not ours to check offline
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked.relative_to(ROOT)}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_the_link_checker_sees_links_and_catches_a_broken_one(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section, here\n\n[ok](#a-section-here) [bad](#nowhere)\n")
    assert anchors(page) == {"title", "a-section-here"}
    assert links(page) == ["#a-section-here", "#nowhere"]
    assert len(links(ROOT / "README.md")) >= 10  # the README's links are read, not skipped


def documented_settings() -> list[str]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    table = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    names = []
    for row in re.findall(r"^\| (.+?) \|", table, re.MULTILINE):
        names += re.findall(r"`([A-Za-z]+)`", row)
    return names


def test_the_configuration_page_documents_every_setting_and_only_settings() -> None:
    documented = documented_settings()
    assert len(documented) == len(set(documented)), "a setting is documented twice"
    assert set(documented) == {*SETTING_NAMES, "stacks"}


# --- the alarm runbook (docs/operations.md, Alarms) ----------------------------------------------------------
RUNBOOK_PARTS = ("**Means**", "**Likely causes**", "**First**", "```bash")


def runbook_entries() -> dict[str, str]:
    """`#### <AlarmName>` under docs/operations.md's `### Alarms`, each with its text."""
    text = (ROOT / "docs" / "operations.md").read_text()
    alarms = text.split("\n### Alarms\n", 1)[1].split("\n### ", 1)[0]
    parts = re.split(r"^#### (.+)\n", alarms, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.slow  # synthesizes the app (shared with tests/test_stack*.py)
def test_every_alarm_has_a_runbook_entry_and_every_entry_an_alarm() -> None:
    stack, template = synthesize()
    prefix = f"{stack.stack_name}-"
    alarms = {
        alarm["Properties"]["AlarmName"].removeprefix(prefix)
        for alarm in resources(template.to_json(), "AWS::CloudWatch::Alarm").values()
    }
    entries = runbook_entries()
    without_entry = sorted(alarms - set(entries))
    assert not without_entry, (
        f"alarms without a runbook entry: {without_entry}. Add each to docs/operations.md, under '### Alarms', as"
        f" '#### <AlarmName>' (its AlarmName less '{prefix}') followed by **Means**: what it means, **Likely"
        " causes**: ..., and **First**: then a ```bash block with the first command to run (a real command:"
        " tests/test_doc_commands.py parses it)"
    )
    without_alarm = sorted(set(entries) - alarms)
    assert not without_alarm, (
        f"runbook entries in docs/operations.md for no alarm the stack creates: {without_alarm}: remove them, or"
        f" name each heading after its alarm's AlarmName less '{prefix}'"
    )
    incomplete = {name: [p for p in RUNBOOK_PARTS if p not in body] for name, body in entries.items()}
    assert not {name: parts for name, parts in incomplete.items() if parts}, f"runbook entries lacking: {incomplete}"


def test_the_runbook_reader_sees_every_entry() -> None:
    entries = runbook_entries()
    assert len(entries) >= 10 and "LiveBacklogLate" in entries and "```bash" in entries["ExecutionsFailed"]


# --- the errors page (docs/errors.md) ---------------------------------------------------------------------------
def documented_errors() -> list[str]:
    """The error names in the first column of docs/errors.md's table (`Lambda.*` stands for every Lambda.X)."""
    names = []
    for first_column in re.findall(r"^\| (.+?) \|", (ROOT / "docs" / "errors.md").read_text(), re.MULTILINE):
        names += re.findall(r"`([^`]+)`", first_column)
    return names


def definition(machine: dict[str, Any]) -> dict[str, Any]:
    """A state machine's ASL from the template, its intrinsic functions (ARNs inside strings) left as REF."""
    body = machine["Properties"]["DefinitionString"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    return dict(json.loads("".join(part if isinstance(part, str) else "REF" for part in parts)))


def errors_executions_end_with() -> set[str]:
    """The Fail states' Error; every error the workflows retry or catch by name, which end the execution once
    the retries are spent (the ErrorPath Fail states carry what States.ALL caught: these, or the function's);
    and the function's error classes."""
    _, template = synthesize()
    found = {name for name, kind in inspect.getmembers(errors, inspect.isclass) if issubclass(kind, errors.CopyError)}
    found.discard("CopyError")  # the base class, never raised
    for machine in resources(template.to_json(), "AWS::StepFunctions::StateMachine").values():
        for state in definition(machine)["States"].values():
            if state["Type"] == "Fail" and "Error" in state:
                found.add(state["Error"])
            for handler in (*state.get("Retry", []), *state.get("Catch", [])):
                found.update(handler["ErrorEquals"])
    found.discard("States.ALL")
    return found


@pytest.mark.slow  # synthesizes the app (shared with tests/test_stack*.py)
def test_the_errors_page_documents_every_error_an_execution_can_end_with_and_only_those() -> None:
    documented = documented_errors()
    ends_with = errors_executions_end_with()
    undocumented = sorted(e for e in ends_with if not any(fnmatch.fnmatchcase(e, d) for d in documented))
    assert not undocumented, f"errors an execution can end with that docs/errors.md does not name: {undocumented}"
    unknown = sorted(
        d for d in documented if d != "States.ALL" and not any(fnmatch.fnmatchcase(e, d) for e in ends_with)
    )
    assert not unknown, f"docs/errors.md names errors no execution ends with (a Fail state's name?): {unknown}"
    assert {"FunctionMisconfigured", "InconsistentMetadata", "Lambda.ServiceException"} <= ends_with
    assert "StillInconsistentAfterForce" not in documented  # the Fail state's name, not the execution's error


# --- figures restated outside docs/figures.md ------------------------------------------------------------------
@dataclass(frozen=True)
class Restated:
    """A scale-model figure a page restates: the phrase as written, the figure it states (in `unit`: d, h, or
    none), and where docs/figures.md's scale table holds it (the largest over every burst, when `burst` is
    None)."""

    page: str
    phrase: str
    figure: float
    quota: str
    concurrent_copies: str
    burst: str | None
    column: str
    unit: str = ""


DEFAULT_QUOTA = ("0.25", "100")
LONGEST = "longest event -> call"
RESERVE = "peak Lambda (reserve)"
RESTATED = [
    Restated("operations.md", "a 1M backfill's last copy waits 48 days at the default quota", 48, *DEFAULT_QUOTA,
             "1M backfill", LONGEST, "d"),
    Restated("operations.md", "then its copies take 48 days at the default quota", 48, *DEFAULT_QUOTA,
             "1M backfill", LONGEST, "d"),
    Restated("operations.md", "5.3 days\n  with the default 100 concurrent copies", 5.3, "10", "100", "1M backfill",
             LONGEST, "d"),
    Restated("operations.md", "and 28 hours with 600", 28, "10", "600", "1M backfill", LONGEST, "h"),
    Restated("operations.md", "themselves, at the quota's pace: 48 days at the default quota", 48, *DEFAULT_QUOTA,
             "1M backfill", LONGEST, "d"),
    Restated("operations.md", "(a backfill of 1,000,000 image sets lasts 48 days at the default quota)", 48,
             *DEFAULT_QUOTA, "1M backfill", LONGEST, "d"),
    Restated("configuration.md", "a 1M backfill's copies take 48 days at the default quota", 48, *DEFAULT_QUOTA,
             "1M backfill", LONGEST, "d"),
    Restated("configuration.md", "(10 at the default quota; the", 10, *DEFAULT_QUOTA, None, RESERVE),
    Restated("configuration.md", "(1.25 x the peak: 10 at the default quota", 10, *DEFAULT_QUOTA, None, RESERVE),
    Restated("configuration.md", "58 at 10 TPS with the default 100 concurrent copies", 58, "10", "100", None, RESERVE),
    Restated("configuration.md", "184 at 40 TPS with 2,400", 184, "40", "2,400", None, RESERVE),
    Restated("configuration.md", "with 2,400 concurrent copies the scale model peaks at 496 transitions", 496, "40",
             "2,400", None, "transitions/s"),
]  # fmt: skip
# Durations the pages state that are settings or AWS limits, not measured: they need no figures.md row.
NOT_MEASURED = {"1 day", "2 days", "14 days", "17 days", "30 days"}
DURATION = re.compile(r"\b\d[\d.,]* (?:days?|hours?)\b")


def scale_table() -> list[dict[str, str]]:
    text = (ROOT / "docs" / "figures.md").read_text().split("## The scale model", 1)[1].split("\n## ", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
    header, _, *body = rows
    return [dict(zip(header, row, strict=True)) for row in body]


def table_figure(cell: str, column: str, unit: str) -> float:
    """`48.2 d`, `28.1 h`, `76 min`, `47 (reserve 59)`, `497` as a number: days or hours for LONGEST, the reserve
    for RESERVE."""
    if column == RESERVE:
        return float(re.search(r"reserve (\d+)", cell)[1])  # type: ignore[index]
    value, _, cell_unit = cell.replace(",", "").partition(" ")
    hours = {"d": 24.0, "h": 1.0, "min": 1 / 60, "s": 1 / 3600, "": 1.0}[cell_unit]
    return float(value) * hours / {"d": 24.0, "h": 1.0, "": 1.0}[unit] if column == LONGEST else float(value)


@pytest.mark.parametrize("restated", RESTATED, ids=lambda r: f"{r.page}: {r.phrase}")
def test_a_restated_figure_agrees_with_figures_md(restated: Restated) -> None:
    page = (ROOT / "docs" / restated.page).read_text()
    assert restated.phrase in page, f"{restated.page} no longer says {restated.phrase!r}: update RESTATED"
    rows = [
        row
        for row in scale_table()
        if (row["Q (TPS)"], row["concurrent copies"]) == (restated.quota, restated.concurrent_copies)
        and restated.burst in (None, row["burst"])
    ]
    assert rows, f"docs/figures.md's scale table has no row for {restated}"
    measured = max(table_figure(row[restated.column], restated.column, restated.unit) for row in rows)
    decimals = len(str(restated.figure).split(".")[1]) if restated.figure % 1 else 0
    assert round(measured, decimals) == restated.figure, (
        f"{restated.page} says {restated.phrase!r}; docs/figures.md says {measured:.{decimals}f}"
    )


def test_no_page_restates_a_long_duration_figures_md_does_not_check() -> None:
    """A backlog's or a backfill's days and hours come from the scale model: each restatement is in RESTATED."""
    unchecked = []
    for page in PAGES:
        if page.name == "figures.md":
            continue
        registered = " ".join(r.phrase for r in RESTATED if r.page == page.name)
        for duration in DURATION.findall(page.read_text().replace("\n  ", " ")):
            if duration not in NOT_MEASURED and duration not in registered:
                unchecked.append(f"{page.name}: {duration}")
    assert not unchecked, (
        f"durations restated without a check: {unchecked}: link to docs/figures.md instead, or add the phrase to"
        " RESTATED (tests/test_docs.py) with the scale table's row it comes from; a setting or an AWS limit goes in"
        " NOT_MEASURED"
    )


@pytest.mark.slow  # synthesizes the app (shared with tests/test_stack*.py)
def test_the_deploy_page_lists_every_output_of_the_stack() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text().split("## Read the outputs", 1)[1].split("\n## ", 1)[0]
    listed = [name for row in re.findall(r"^\| (.+?) \|", text, re.MULTILINE) for name in re.findall(r"`(\w+)`", row)]
    outputs = set(synthesize()[1].to_json()["Outputs"])
    assert sorted(listed) == sorted(outputs), (
        "docs/deploy.md's outputs table (## Read the outputs) and the stack's outputs (infra/outputs.py) differ:"
        f" listed only {sorted(set(listed) - outputs)}, not listed {sorted(outputs - set(listed))}"
    )
