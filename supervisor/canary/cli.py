"""`iris-smoke canary`: the continuous canary daemon (see loop.py for how it works).

Preflight, in this order, each failure exit 2 with a message naming the field or value:
config (flags over file over environment), budgets against the unit's limits, the state
directory (`lock.check_state_dir`, which `--check-config` applies too), the lock (naming
the pid that holds it). Only then does the daemon log to its
events file, so a refused second daemon never writes into the first one's state.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from common import logs
from common.errors import ConfigError, LockHeld, UsageError
from common.files import UnsafePath
from common.jsonshape import Json, JsonObject
from common.outcome import ExitCode
from supervisor.canary import budgets, runs
from supervisor.canary.config import CANARY_SETTINGS, CanaryConfig, resolve
from supervisor.canary.lock import LOCK_NAME, StateLock, check_state_dir
from supervisor.canary.loop import Canary
from supervisor.command_line import Parser, private_umask
from supervisor.config import resolved
from supervisor.preflight import plan
from supervisor.run_cli import build_parser as build_run_parser
from supervisor.settings import add_flags, given
from supervisor.settings import resolved as resolved_settings

EVENTS_NAME = "canary-events.jsonl"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="iris-smoke canary",
        description="Smoke runs back to back on an interval, under systemd. "
        "Arguments after `--` are passed to every run.",
    )
    parser.add_argument("--config", type=Path, default=None, help="TOML file; keys mirror these flags (flags win)")
    add_flags(parser, CANARY_SETTINGS, CanaryConfig())
    parser.add_argument("--log-level", default="info", choices=sorted(logs.LEVELS))
    parser.add_argument(
        "--check-config", action="store_true",
        help="validate the config, budgets and the runs' arguments, print the resolved configuration (JSON)",
    )  # fmt: skip
    return parser


def split_extra(argv: list[str]) -> tuple[list[str], list[str] | None]:
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1 :]
    return argv, None


def flag_values(args: argparse.Namespace, extra: list[str] | None) -> dict[str, object]:
    """The flags actually given, parsed, keyed by config field."""
    values = given(args, CANARY_SETTINGS)
    if extra is not None:
        values["run_args"] = tuple(extra)
    return values


def checked(args: argparse.Namespace, extra: list[str] | None) -> tuple[CanaryConfig, Callable[[], CanaryConfig]]:
    """The config merged and its budgets checked; nothing created yet."""
    flags = flag_values(args, extra)

    def load() -> CanaryConfig:
        return resolve(flags, args.config, os.environ)

    config = load()
    check = budgets.check(config)
    if check.errors:
        raise ConfigError("; ".join(check.errors))
    return config, load


def preflight(args: argparse.Namespace, extra: list[str] | None) -> tuple[CanaryConfig, Callable[[], CanaryConfig]]:
    config, load = checked(args, extra)
    check_state_dir(config.state_dir, create=True)
    return config, load


def main(argv: list[str]) -> int:
    before, extra = split_extra(argv)
    args = build_parser().parse_args(before)
    private_umask()
    try:
        if args.check_config:
            return check_config(args, extra)
        config, load = preflight(args, extra)
    except ConfigError as exc:
        print(f"iris-smoke canary: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    lock = StateLock(config.state_dir / LOCK_NAME)
    try:
        lock.acquire()
    except (LockHeld, UnsafePath) as exc:
        print(f"iris-smoke canary: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        logs.configure("canary", None, config.state_dir / EVENTS_NAME, level=args.log_level)
        return _serve(config, load, args.log_level)
    finally:
        lock.release()


def check_config(args: argparse.Namespace, extra: list[str] | None) -> int:
    """`canary --check-config`: the canary's checks, and each run's flags through the run's own
    preflight (when the runs are `iris-smoke run`); prints both resolved configs, creates nothing."""
    config, _load = checked(args, extra)
    check_state_dir(config.state_dir, create=False)  # the start's checks, creating nothing
    report: JsonObject = {"canary": describe(config)}
    if config.run_command == CanaryConfig.run_command:
        runs_dir = config.state_dir / "runs"
        for probe in reversed(config.schedule):  # each probe's runs; the first's config is printed
            argv = runs.probe_argv(config, probe, runs_dir, "check-config")
            run_args = build_run_parser().parse_args(argv[len(config.run_command) :])
            try:
                report["run"] = resolved(plan(run_args).config)
            except UsageError as exc:
                field = f"probes ({probe.name})" if config.probes else "run_args"
                raise ConfigError(f"{field}: {exc}") from None
    print(json.dumps(report, indent=2, sort_keys=True))
    return ExitCode.PASSED


def describe(config: CanaryConfig) -> JsonObject:
    """The canary's settings under the config file's keys (`interval`, `keep_runs`); the cluster
    label as it resolves (by default the state directory's name)."""
    probes: list[Json] = [p.as_table() for p in config.probes]
    return resolved_settings(config, CANARY_SETTINGS) | {"cluster_name": config.cluster, "probes": probes}


def _serve(config: CanaryConfig, load: Callable[[], CanaryConfig], log_level: str) -> int:
    log = logs.get_logger()
    log.info("canary_started", config=describe(config))
    for warning in budgets.check(config).warnings:
        log.warning("budget_warning", warning=warning)
    try:
        canary = Canary(config, load, environ=dict(os.environ), log_level=log_level)
        with canary:
            return canary.serve()
    except ConfigError as exc:
        log.error("canary_refused", reason=str(exc))
        print(f"iris-smoke canary: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except Exception as exc:
        # The one final catch: log it; Canary.__exit__ has already killed any run in progress.
        log.exception("canary_crashed", error=str(exc))
        return ExitCode.INFRA
