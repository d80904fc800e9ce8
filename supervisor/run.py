"""`iris-smoke run`: one supervised run, from preflight to `results.json`.

Two kinds of work run under the same skeleton (`supervised`): the smoke run
(`supervisor/smoke.py`), and the demo (`supervisor/demo.py`, hidden `--demo-streams N`),
which exercises the supervisor with nothing but real subprocess trees. The skeleton guarantees the order
that matters: work, then an ordered stop, then the one final escalation and the audit,
then the verdict, whatever happened in between (an exception included).
"""

import argparse
import functools
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from common import env, linux, logs
from common.deadline import Deadline
from common.errors import LockHeld, UsageError
from common.outcome import FailureReason
from supervisor import preflight, report_html, reports
from supervisor.arbiter import Supervisor
from supervisor.backends.base import backend_of
from supervisor.config import RunConfig
from supervisor.demo import DemoWork, demo_specs
from supervisor.lock import PrefixLock
from supervisor.phases import phase
from supervisor.results_file import from_verdict
from supervisor.run_files import RunDirError
from supervisor.run_result import Child, SmokeSections, as_json
from supervisor.smoke import SmokeRun
from supervisor.verdict import Verdict, write_results
from supervisor.version import VERSION


class Work(Protocol):
    """What runs under `supervised`, built once the supervisor exists: run, stop, then judge."""

    def run(self, log: Any) -> None: ...
    def stop(self) -> None: ...
    def verdict(self) -> tuple[list[FailureReason], SmokeSections | None]: ...


def supervised(
    start: Callable[[Supervisor], Work],
    run_id: str,
    run_dir: Path,
    deadline: Deadline,
    *,
    stop_grace_s: float,
    log_level: str,
) -> Verdict:
    """Run the work `start` builds under one supervisor; always stop and audit everything;
    write the verdict."""
    log = logs.get_logger()
    linux.set_child_subreaper()
    raise_fd_limit(log)
    verdict = Verdict(run_id=run_id, started_unix=time.time(), timeout_s=round(deadline.remaining(), 3))
    log.info("run_started", run_dir=str(run_dir), timeout_s=verdict.timeout_s, argv=sys.argv[1:], version=VERSION)
    with Supervisor(run_id, run_dir, deadline, stop_grace_s=stop_grace_s, log_level=log_level) as sup:
        work = start(sup)
        try:
            work.run(log)
        except Exception:
            log.exception("run_crashed")
            verdict.add(FailureReason.INTERNAL_ERROR)
        finally:
            with phase(log, "cleanup"):
                work.stop()
                report = sup.shutdown()
        reasons, smoke = work.verdict()
        for reason in [*sup.failures, *reasons, *([sup.stop_reason] if sup.stop_reason else [])]:
            verdict.add(reason)
        verdict.children = [
            Child(r.name, r.spec.role, r.spec.critical, r.state, r.starts, r.exit_code, r.stats())
            for r in sup.children.values()
        ]
        # The fork/gRPC rule, checked where it matters: this process must never have loaded grpc.
        verdict.processes = report.processes(grpc_imported="grpc" in sys.modules)
        verdict.smoke = smoke
    _write_artefacts(verdict, run_dir, log)
    return verdict


def raise_fd_limit(log: Any) -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: the supervisor holds a pipe per child, and
    a bastion's usual soft 1024 (or a `ulimit -n 120`) runs out long before the streams do.
    An unlimited hard limit is capped at fs.nr_open, the most setrlimit accepts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else _nr_open()
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("fd_limit_not_raised", soft=soft, hard=hard, error=str(exc))
            return
    log.info("fd_limit", old_soft=soft, soft=resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard=hard)


def _nr_open() -> int:
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return 1 << 20  # the kernel's default fs.nr_open


def _write_artefacts(verdict: Verdict, run_dir: Path, log: Any) -> None:
    """The verdict on disk; on a full disk, in the log instead, and the run is an error."""
    result = verdict.result()  # once: results.json and its views say the same finish time
    try:
        path = write_results(run_dir, result)
        reports.write_reports(as_json(result), run_dir)
    except RunDirError as exc:
        # A verdict our own views cannot read is a bug; results.json is on disk, the rest is said here.
        log.error("reports_failed", error=str(exc))
        return
    except OSError as exc:
        verdict.add(FailureReason.ARTEFACT_WRITE_FAILED)
        log.error(
            "verdict_write_failed", run_dir=str(run_dir), error=exc.strerror, filename=str(exc.filename or ""),
            outcome=verdict.outcome, exit_code=int(verdict.exit_code), failure_reasons=list(verdict.reasons),
            tests={t.name: t.outcome for t in verdict.smoke.tests} if verdict.smoke else {},
        )  # fmt: skip
        return
    report_html.render_in_child(run_dir, log)
    log.log(
        logs.outcome_level(verdict.outcome), "run_finished",
        outcome=verdict.outcome, exit_code=int(verdict.exit_code), results=str(path),
    )  # fmt: skip


def _supervise(args: argparse.Namespace, start: Callable[[Supervisor], Work], run_id: str, run_dir: Path,
               timeout_s: float, stop_grace_s: float) -> Verdict:  # fmt: skip
    deadline = Deadline.after(timeout_s)
    preflight.make_run_dir(run_dir)
    logs.configure("supervisor", run_id, run_dir / "events.jsonl", level=args.log_level)
    return supervised(start, run_id, run_dir, deadline, stop_grace_s=stop_grace_s, log_level=args.log_level)


def run_command(args: argparse.Namespace) -> int:
    if args.log_format is not None:
        # Through the environment, so every child (forked or exec'd) renders stdout alike.
        os.environ["IRIS_SMOKE_LOG_FORMAT"] = args.log_format
    if args.demo_streams is not None:
        return _demo_command(args)
    plan = preflight.plan(args)
    env.hold_secret(plan.config.iris.token_env)  # before any fork: every child knows the name
    lock = PrefixLock(plan.prefix)
    try:
        lock.acquire()
    except LockHeld as exc:
        raise UsageError(f"--prefix {plan.prefix}: {exc}") from None
    try:
        config = plan.config
        start = functools.partial(SmokeRun, plan)
        verdict = _supervise(args, start, plan.run_id, plan.run_dir, config.timeout_s, config.stop_grace_s)
    finally:
        lock.release()
    _print_verdict_line(verdict, plan.run_dir)
    _print_keep_hint(plan, verdict)
    return int(verdict.exit_code)


def _demo_command(args: argparse.Namespace) -> int:
    run_id = preflight.run_id_of(args)
    specs = demo_specs(args)
    defaults = RunConfig()
    run_dir = Path(args.log_dir or defaults.log_dir) / run_id
    timeout_s, grace_s = args.timeout or defaults.timeout_s, args.stop_grace or defaults.stop_grace_s
    verdict = _supervise(args, lambda sup: DemoWork(sup, specs), run_id, run_dir, timeout_s, grace_s)
    _print_verdict_line(verdict, run_dir)
    return int(verdict.exit_code)


def _print_verdict_line(verdict: Verdict, run_dir: Path) -> None:
    """One sentence on stderr whatever stdout's format (JSON for journald, ECS, a terminal)."""
    try:
        line = reports.verdict_line(from_verdict(verdict.as_dict()), run_dir)
    except RunDirError:  # logged as reports_failed: the outcome still ends the run's output
        line = f"iris-smoke: {verdict.outcome.upper()} (exit {int(verdict.exit_code)}); summary: none"
    print(line, file=sys.stderr, flush=True)


def _print_keep_hint(plan: preflight.RunPlan, verdict: Verdict) -> None:
    """Only what `--keep` really left (results.json `cluster.kept`), and how to reuse and stop it."""
    cluster = verdict.smoke.cluster if verdict.smoke else None
    if cluster is None or not cluster.kept:
        if plan.config.keep:
            print("iris-smoke: --keep: nothing was left running (the cluster did not start or has exited)",
                  file=sys.stderr)  # fmt: skip
        return
    hint = backend_of(plan.config.cluster).keep_hint(plan.prefix, str(cluster.address), int(cluster.pid))
    print(hint, file=sys.stderr)
