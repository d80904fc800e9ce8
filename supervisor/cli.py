"""The `iris-smoke` command line: it dispatches, and each command owns its parser.

`run` is the supervisor (`run_cli`); `show` and `report` read a run directory (`look_cli`);
`canary` and `local-cluster` are separate programs that happen to share the executable. Each
is imported only when chosen, so `iris-smoke run` never loads grpc (the local cluster serves
gRPC and is imported lazily).
"""

import argparse
import sys

from common.errors import UsageError
from common.outcome import ExitCode
from supervisor.command_line import Parser, check_argv_utf8, no_core_dumps
from supervisor.version import VERSION

COMMANDS = {
    "run": "one supervised smoke run (see `run --help`)",
    "show": "a finished run's verdict, tests, streams and failure reasons",
    "report": "write a run directory's report.html again, or a log directory's index.html (--index)",
    "canary": "the canary daemon: runs on an interval (see `canary --help`)",
    "local-cluster": "the embedded local cluster (see `local-cluster --help`)",
}


def build_parser() -> argparse.ArgumentParser:
    """The commands, for `--help`, `--version` and a refusal of anything else."""
    parser = Parser(
        prog="iris-smoke",
        description="Smoke tests and canaries for accelerator clusters run by a controller with an autoscaler.",
    )
    parser.add_argument("--version", action="version", version=f"iris-smoke {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    no_core_dumps()
    try:
        check_argv_utf8(argv)
    except UsageError as exc:
        print(f"iris-smoke: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    command, rest = (argv[0], argv[1:]) if argv else ("", [])
    if command == "run":
        from supervisor import run_cli

        return run_cli.main(rest)
    if command in ("show", "report"):
        from supervisor import look_cli

        return look_cli.main(command, rest)
    if command == "canary":
        from supervisor.canary import cli as canary_cli

        return canary_cli.main(rest)
    if command == "local-cluster":
        from local_cluster import cli as local_cluster_cli

        return local_cluster_cli.main(rest)
    build_parser().parse_args(argv)  # --help, --version, or a refusal naming the commands
    return ExitCode.USAGE


if __name__ == "__main__":
    sys.exit(main())
