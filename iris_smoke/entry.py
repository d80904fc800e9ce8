"""The `iris-smoke` executable's entry point: check that our own packages are the ones imported.

The import names `supervisor`, `workers`, `common` and `local_cluster` follow the
repository's layout, and supervisord's distribution also installs a top-level `supervisor`
package. In a shared environment one overwrites or shadows the other, and
`from supervisor.cli import main` would fail with a bare ImportError (or run someone else's
code). This module sits in a package of its own, above the others (none imports it); it
imports nothing of ours but itself, finds where each package would come from, and refuses
with the fix when one is not beside it.
"""

import importlib.util
import sys
from pathlib import Path

OUR_PACKAGES = ("supervisor", "workers", "common", "local_cluster")
# A file only iris-smoke's `supervisor` package has.
MARKER = "cli.py"
EXIT_FOREIGN_PACKAGE = 3  # infrastructure: the installation is broken, not the command line


def foreign_package() -> str | None:
    """The first of our import names that resolves outside this installation, described; or None."""
    home = Path(__file__).resolve().parent.parent
    for name in OUR_PACKAGES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        where = Path(origin).resolve().parent if origin else None
        if where is None or where.parent != home or (name == "supervisor" and not (where / MARKER).is_file()):
            return f"`import {name}` resolves to {where or 'nothing'}, not to iris-smoke's {home / name}"
    return None


def main() -> int:
    problem = foreign_package()
    if problem is not None:
        print(
            f"iris-smoke: {problem} (supervisord's `supervisor` package has the same name). "
            "Install iris-smoke into an environment of its own: `pipx install iris-smoke`, "
            "or `python3 -m venv /opt/iris-smoke && /opt/iris-smoke/bin/pip install iris-smoke`.",
            file=sys.stderr,
        )
        return EXIT_FOREIGN_PACKAGE
    from supervisor.cli import main as cli_main

    return cli_main()
