"""Regenerate `docs/results.schema.json` from the `RunResult` dataclasses (supervisor/run_result.py).

    python scripts/gen_results_schema.py           # rewrite docs/results.schema.json
    python scripts/gen_results_schema.py --check   # exit 1 if the committed schema is stale (CI)

The schema is never edited by hand: a field added to, or changed in, the tree that results.json
is written from changes it here, and CI fails until the new schema is committed.
"""

import argparse
import difflib
import json
import sys
from pathlib import Path

from supervisor.run_result import results_schema

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "docs" / "results.schema.json"


def rendered() -> str:
    return json.dumps(results_schema(), indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed schema is stale")
    args = parser.parse_args()
    text = rendered()
    if not args.check:
        SCHEMA.write_text(text)
        return 0
    committed = SCHEMA.read_text() if SCHEMA.exists() else ""
    if committed == text:
        return 0
    diff = difflib.unified_diff(committed.splitlines(), text.splitlines(), "committed", "generated", lineterm="", n=1)
    print("stale docs/results.schema.json: run python scripts/gen_results_schema.py", file=sys.stderr)
    print("\n".join(list(diff)[:40]), file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
