"""`iris-smoke run`: its parser (the flags derived from `config.RUN_SETTINGS`) and its start."""

import argparse
import json
import sys

from common.errors import UsageError
from common.outcome import ExitCode
from common.toml_table import duration
from supervisor.command_line import Parser, private_umask
from supervisor.config import RUN_SETTINGS, RunConfig
from supervisor.settings import add_flags, flag_type


def build_parser() -> argparse.ArgumentParser:
    run = Parser(prog="iris-smoke run", description="One supervised smoke run.")
    run.add_argument("--config", default=None, help="TOML run config (see README)")
    add_flags(run, RUN_SETTINGS, RunConfig())
    run.add_argument("--run-id", default=None, help="run id (default: generated, unique)")
    run.add_argument(
        "--check-config", action="store_true",
        help="validate config and flags as a run would, print the resolved configuration (JSON), start nothing",
    )  # fmt: skip
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument(
        "--log-format", default=None, choices=["auto", "json", "ecs", "console"],
        help="stdout format (default auto: console on a terminal, JSON otherwise); events.jsonl is always JSON",
    )  # fmt: skip
    # The demo (supervisor/demo.py): N demo stream children, no cluster; for tests and benches.
    run.add_argument("--demo-streams", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument("--demo-duration", type=flag_type(duration()), default=3.0, help=argparse.SUPPRESS)
    run.add_argument("--demo-interval", type=flag_type(duration()), default=0.2, help=argparse.SUPPRESS)
    return run


def check_config(args: argparse.Namespace) -> int:
    """`run --check-config`: every preflight check a run makes, then the resolved config; creates nothing."""
    from supervisor.config import resolved
    from supervisor.preflight import plan

    print(json.dumps(resolved(plan(args).config), indent=2, sort_keys=True))
    return ExitCode.PASSED


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    private_umask()
    from supervisor.run import run_command

    try:
        return check_config(args) if args.check_config else run_command(args)
    except UsageError as exc:
        print(f"iris-smoke: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except OSError as exc:
        # Before the supervisor is up (run directory, events file): nothing to clean up yet.
        print(f"iris-smoke: cannot write {exc.filename or 'the run directory'}: {exc.strerror}", file=sys.stderr)
        return ExitCode.INFRA
