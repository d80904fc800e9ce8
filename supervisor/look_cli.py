"""`iris-smoke show` and `iris-smoke report`: read a run directory, never start anything."""

import argparse
import sys
from pathlib import Path

from common.outcome import ExitCode
from supervisor.command_line import Parser, private_umask
from supervisor.config import RunConfig


def build_parser(command: str) -> argparse.ArgumentParser:
    if command == "report":
        report = Parser(
            prog="iris-smoke report",
            description="Write a run directory's report.html again, or a log directory's index.html.",
        )
        report.add_argument("run_dir", nargs="?", metavar="RUN_DIR")
        report.add_argument(
            "--index", metavar="LOG_DIR", help="write LOG_DIR/index.html: its runs over time, per probe"
        )
        return report
    show = Parser(prog="iris-smoke show", description="A finished run's verdict, tests, streams and failure reasons.")
    show.add_argument("run_dir", nargs="?", default="latest", metavar="RUN_DIR|latest")
    show.add_argument(
        "--log-dir", default=RunConfig.log_dir, help=f"where `latest` looks (default {RunConfig.log_dir})"
    )
    return show


def main(command: str, argv: list[str]) -> int:
    from supervisor.history import write_index
    from supervisor.report_html import write_report
    from supervisor.reports import visible
    from supervisor.results_file import read_results
    from supervisor.run_files import RunDirError
    from supervisor.show import find_run_dir, render_show

    args = build_parser(command).parse_args(argv)
    private_umask()
    if command == "report" and (args.run_dir is None) == (args.index is None):
        print("iris-smoke report: give a RUN_DIR or --index LOG_DIR (one of them)", file=sys.stderr)
        return ExitCode.USAGE
    try:
        if command == "report" and args.index is not None:
            print(visible(str(write_index(Path(args.index)))))
            return 0
        run_dir = find_run_dir(args.run_dir, Path(getattr(args, "log_dir", RunConfig.log_dir)))
        if command == "show":
            print(render_show(read_results(run_dir), run_dir))
        else:
            print(visible(str(write_report(run_dir))))
    except RunDirError as exc:
        # One line, escaped: the message may quote a path someone chose (`latest` in a shared log dir).
        print(visible(f"iris-smoke {command}: {exc}"), file=sys.stderr)
        return ExitCode.USAGE
    except OSError as exc:
        print(visible(f"iris-smoke {command}: cannot write {exc.filename}: {exc.strerror}"), file=sys.stderr)
        return ExitCode.INFRA
    return 0
