"""Writes tests/fixtures/<release>/ with a previous release's own code (`make upgrade-fixtures`):

    git archive v0.1.0 | tar -x -C /tmp/release
    .venv/bin/python tests/upgrade_fixtures.py --release-source /tmp/release --out tests/fixtures/v0.1.0

Run as a script, so that the repository's own packages are NOT on the path: `infra`, `offline` and the
function's `copier` are imported from --release-source, i.e. the release's code writes every record.

- logical-ids.json: the default app's resources (logical id -> type and deletion policies), for
  tests/test_upgrade.py's check that an upgrade replaces nothing stateful.
- workflows.json: the release's state machine definitions (ASL, intrinsic functions unresolved): an
  execution started before an upgrade keeps its definition, so the current code must serve it.
- records.json: what the release left in the table and in its executions (tests/test_upgrade.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DATASTORE_ID = "0123456789abcdef0123456789abcdef"  # offline.seed.DATASTORE_ID


def logical_ids(template: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        logical_id: {
            "Type": resource["Type"],
            **{k: resource[k] for k in ("DeletionPolicy", "UpdateReplacePolicy") if k in resource},
        }
        for logical_id, resource in sorted(template["Resources"].items())
    }


def workflows(template: dict[str, Any]) -> dict[str, Any]:
    from offline.template import state_machine  # the release's

    return {role: state_machine(template, role)[1]["Properties"]["DefinitionString"] for role in ("copy", "backfill")}


def write(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release-source", type=Path, required=True, help="the release's files (git archive)")
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    source = arguments.release_source.resolve()
    sys.path[:0] = [str(source), str(source / "lambda")]
    arguments.out.mkdir(parents=True, exist_ok=True)

    from offline.template import synthesize  # the release's

    template = synthesize({"datastoreId": DATASTORE_ID})
    write(arguments.out / "logical-ids.json", logical_ids(template))
    write(arguments.out / "workflows.json", workflows(template))


if __name__ == "__main__":
    main()
