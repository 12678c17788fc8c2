"""The picture of the state machine in docs/design.md is the synthesized definition, all of it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from stack_app import synthesize

from infra.workflow_diagram import PAGE, current_block, definition_of, diagram_block, mermaid

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return definition_of(synthesize()[1].to_json())


def test_the_design_page_picture_is_the_synthesized_definition(definition: dict[str, Any]) -> None:
    assert current_block(PAGE.read_text()) == diagram_block(definition), "stale picture: run `make diagram`"


def test_the_picture_draws_every_state_and_every_transition(definition: dict[str, Any]) -> None:
    text = mermaid(definition)
    labels = dict(re.findall(r'^    (\w+)(?:\[|\{|\(|\[/|\[\[)+"([^"]+)"', text, re.MULTILINE))
    assert sorted(labels.values()) == sorted(definition["States"])
    drawn = {
        (labels[source], labels[target], arrow == "-.->")
        for source, arrow, target in re.findall(r"^    (\w+) (-->|-\.->)(?:\|[^|]*\|)? (\w+)$", text, re.MULTILINE)
        if source != "start"
    }
    expected = set()
    for name, state in definition["States"].items():
        for target in [state.get("Next"), state.get("Default"), *(r["Next"] for r in state.get("Choices", []))]:
            if target:
                expected.add((name, target, False))
        expected |= {(name, c["Next"], True) for c in state.get("Catch", [])}
    assert drawn == expected
    assert f"start((start)) --> {definition['StartAt']}" in text
