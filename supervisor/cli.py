"""The `iris-smoke` command line.

`run` is the supervisor. Other subcommands are separate programs that happen to share
the executable; they are imported only when chosen, so `iris-smoke run` never loads
grpc (the local cluster serves gRPC and is imported lazily).
"""

import argparse
import json
import os
import resource
import sys
from pathlib import Path
from typing import NoReturn

from common.errors import UsageError
from common.outcome import ExitCode
from supervisor import inputs
from supervisor.config import RunConfig
from supervisor.version import VERSION


class Parser(argparse.ArgumentParser):
    """argparse, but a refusal is one line on stderr naming the argument, then exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(ExitCode.USAGE)


def _positive_seconds(text: str) -> float:
    try:
        return inputs.seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_argv_utf8(argv: list[str]) -> None:
    """Refuse arguments that are not UTF-8: they would reach paths, JSON logs and messages."""
    for i, arg in enumerate(argv):
        try:
            inputs.utf8(arg)
        except ValueError as exc:
            flag = arg.partition("=")[0] if arg.startswith("--") else (argv[i - 1] if i else f"argument {i + 1}")
            raise UsageError(f"{flag}: {exc}") from None


def no_core_dumps() -> None:
    """RLIMIT_CORE 0, soft and hard, inherited by every child: a crashing process that holds a
    token (a child, a follower) must not leave its memory in a core file."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def private_umask() -> None:
    """Run directories 0750 and files 0640 however we are started; a stricter umask (systemd's) stays."""
    os.umask(os.umask(0o027) | 0o027)


def _add_run_parser(sub: "argparse._SubParsersAction[Parser]") -> None:
    run = sub.add_parser("run", help="one supervised smoke run")
    D = RunConfig()  # the defaults, declared once on the dataclass; the help reads them
    # Defaults are None so that a value from --config is only overridden by a flag given.
    run.add_argument("--config", default=None, help="TOML run config (see README)")
    run.add_argument(
        "--cluster", choices=["local", "ssh", "gcp", "iris", "iris-local"], default=None,
        help=f"cluster kind (default {D.cluster}): the embedded cluster, ssh, gcp, a real Iris (attach or local)",
    )  # fmt: skip
    run.add_argument(
        "--controller", default=None, metavar="ADDR", help="attach to this controller (Iris: http://HOST:PORT)"
    )
    run.add_argument(
        "--iris-bin", default=None, metavar="PATH", help=f"the `iris` executable (default {D.iris.bin!r} on PATH)"
    )
    run.add_argument("--iris-config", default=None, metavar="YAML", help="Iris local cluster config (default built in)")
    run.add_argument("--log-dir", default=None, help=f"parent of the run directory (default {D.log_dir})")
    run.add_argument(
        "--timeout", type=_positive_seconds, default=None, help=f"global deadline (s), default {D.timeout_s:g}"
    )
    run.add_argument(
        "--boot-timeout", type=_positive_seconds, default=None, help=f"cluster start (s), default {D.boot_timeout_s:g}"
    )
    run.add_argument(
        "--job-timeout", type=_positive_seconds, default=None, help=f"per test job (s), default {D.job_timeout_s:g}"
    )
    run.add_argument(
        "--stop-grace", type=_positive_seconds, default=None, help=f"TERM-to-KILL grace (s), default {D.stop_grace_s:g}"
    )
    run.add_argument(
        "--discovery-interval", type=_positive_seconds, default=None, help="VM listing (s), default 1 local, 10 else"
    )
    run.add_argument("--prefix", default=None, help="label prefix (default unique per run)")
    run.add_argument("--keep", action="store_true", help="leave the local cluster running")
    run.add_argument("--tests", default=None, metavar="NAMES", help="standard tests, comma-separated")
    run.add_argument(
        "--observe", action="store_true", default=None,
        help="observe only: submit no job; discovery, streams and monitors watch the cluster, the verdict "
        "rests on what they saw (for an identity that may not launch jobs)",
    )  # fmt: skip
    run.add_argument(
        "--observe-s", type=_positive_seconds, default=None, metavar="T",
        help=f"how long an observe run watches (s), default {D.observe_s:g}, capped by the deadline",
    )  # fmt: skip
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
    run.add_argument("--demo-duration", type=_positive_seconds, default=3.0, help=argparse.SUPPRESS)
    run.add_argument("--demo-interval", type=_positive_seconds, default=0.2, help=argparse.SUPPRESS)


def _add_look_parsers(sub: "argparse._SubParsersAction[Parser]") -> None:
    show = sub.add_parser("show", help="a finished run's verdict, tests, streams and failure reasons")
    show.add_argument("run_dir", nargs="?", default="latest", metavar="RUN_DIR|latest")
    show.add_argument(
        "--log-dir", default=RunConfig.log_dir, help=f"where `latest` looks (default {RunConfig.log_dir})"
    )
    report = sub.add_parser("report", help="write a run directory's report.html again")
    report.add_argument("run_dir", metavar="RUN_DIR")


def _look(args: argparse.Namespace) -> int:
    """`show` and `report`: read a run directory, never start anything."""
    from supervisor.report_html import write_report
    from supervisor.reports import visible
    from supervisor.results_file import read_results
    from supervisor.run_files import RunDirError
    from supervisor.show import find_run_dir, render_show

    try:
        run_dir = find_run_dir(args.run_dir, Path(getattr(args, "log_dir", RunConfig.log_dir)))
        if args.command == "show":
            print(render_show(read_results(run_dir), run_dir))
        else:
            print(visible(str(write_report(run_dir))))
    except RunDirError as exc:
        # One line, escaped: the message may quote a path someone chose (`latest` in a shared log dir).
        print(visible(f"iris-smoke {args.command}: {exc}"), file=sys.stderr)
        return ExitCode.USAGE
    except OSError as exc:
        print(visible(f"iris-smoke {args.command}: cannot write {exc.filename}: {exc.strerror}"), file=sys.stderr)
        return ExitCode.INFRA
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="iris-smoke",
        description="Smoke tests and canaries for accelerator clusters run by a controller with an autoscaler.",
    )
    parser.add_argument("--version", action="version", version=f"iris-smoke {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_parser(sub)
    _add_look_parsers(sub)
    sub.add_parser("canary", help="the canary daemon: runs on an interval (see `canary --help`)", add_help=False)
    sub.add_parser("local-cluster", help="the embedded local cluster (see `local-cluster --help`)", add_help=False)
    return parser


def check_config(args: argparse.Namespace) -> int:
    """`run --check-config`: every preflight check a run makes, then the resolved config; creates nothing."""
    from supervisor.config import resolved
    from supervisor.preflight import plan

    print(json.dumps(resolved(plan(args).config), indent=2, sort_keys=True))
    return ExitCode.PASSED


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    no_core_dumps()
    try:
        check_argv_utf8(argv)
    except UsageError as exc:
        print(f"iris-smoke: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if argv[:1] == ["canary"]:
        from supervisor.canary.cli import main as canary_main

        return canary_main(argv[1:])
    if argv[:1] == ["local-cluster"]:
        from local_cluster.cli import main as local_cluster_main

        return local_cluster_main(argv[1:])
    args = build_parser().parse_args(argv)
    private_umask()
    if args.command in ("show", "report"):
        return _look(args)
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


if __name__ == "__main__":
    sys.exit(main())
