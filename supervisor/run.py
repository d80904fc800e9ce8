"""`iris-smoke run`: one supervised run, from preflight to `results.json`.

Two kinds of work run under the same skeleton (`supervised`): the smoke run
(`supervisor/smoke.py`), and the demo (`--demo-streams N`), which exercises the
supervisor with nothing but real subprocess trees. The skeleton guarantees the order
that matters: work, then an ordered stop, then the one final escalation and the audit,
then the verdict, whatever happened in between (an exception included).
"""

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from common import linux, logs
from common.deadline import Deadline
from common.outcome import FailureReason
from supervisor import preflight, report_html, reports
from supervisor.arbiter import Supervisor
from supervisor.children import ChildSpec
from supervisor.cli import UsageError
from supervisor.lock import LockHeld, PrefixLock
from supervisor.phases import phase
from supervisor.restart import RestartPolicy
from supervisor.smoke import SmokeRun
from supervisor.verdict import Verdict, write_results
from supervisor.version import VERSION
from workers.child_args import DemoStreamArgs


class Work(Protocol):
    def run(self, sup: Supervisor, log: Any) -> None: ...
    def stop(self, sup: Supervisor) -> None: ...
    def verdict(self, sup: Supervisor) -> tuple[list[FailureReason], dict[str, Any]]: ...


@dataclass
class DemoWork:
    specs: list[ChildSpec]

    def run(self, sup: Supervisor, log: Any) -> None:
        with phase(log, "children"):
            for spec in self.specs:
                sup.add(spec)
            sup.run_until(lambda: all(r.finished for r in sup.children.values()))

    def stop(self, sup: Supervisor) -> None:
        pass

    def verdict(self, sup: Supervisor) -> tuple[list[FailureReason], dict[str, Any]]:
        return [], {}


@dataclass
class SmokeWork:
    plan: preflight.RunPlan
    smoke: SmokeRun | None = field(default=None)

    def run(self, sup: Supervisor, log: Any) -> None:
        self.smoke = smoke = SmokeRun(self.plan, sup)
        with phase(log, "clean_start"):
            smoke.phase = "clean_start"
            smoke.delete_leftovers("start")
        with phase(log, "cluster"):
            smoke.phase = "cluster"
            ready = smoke.start_cluster()
        if not ready:
            return
        with phase(log, "observers"):
            smoke.phase = "observers"
            smoke.start_observers()
        with phase(log, "tests"):
            smoke.phase = "tests"
            smoke.run_tests()
        if sup.stop_reason is None:
            smoke.streams.close_window()  # a stopped run observed no whole window
        if sup.stop_reason in (None, FailureReason.DEADLINE_EXCEEDED):
            with phase(log, "diagnostics"):
                smoke.phase = "diagnostics"
                smoke.collect_diagnostics()

    def stop(self, sup: Supervisor) -> None:
        if self.smoke is not None:
            self.smoke.phase = "cleanup"
            self.smoke.progress.tick()
            self.smoke.stop_in_order()

    def verdict(self, sup: Supervisor) -> tuple[list[FailureReason], dict[str, Any]]:
        if self.smoke is None:
            return [], {}
        return self.smoke.failures(), self.smoke.summary_extra()


def supervised(
    work: Work, run_id: str, run_dir: Path, deadline: Deadline, *, stop_grace_s: float, log_level: str
) -> Verdict:
    """Run `work` under one supervisor; always stop and audit everything; write the verdict."""
    log = logs.get_logger()
    linux.set_child_subreaper()
    raise_fd_limit(log)
    verdict = Verdict(run_id=run_id, started_unix=time.time(), timeout_s=round(deadline.remaining(), 3))
    log.info("run_started", run_dir=str(run_dir), timeout_s=verdict.timeout_s, argv=sys.argv[1:], version=VERSION)
    with Supervisor(run_id, run_dir, deadline, stop_grace_s=stop_grace_s, log_level=log_level) as sup:
        try:
            work.run(sup, log)
        except Exception:
            log.exception("run_crashed")
            verdict.add(FailureReason.INTERNAL_ERROR)
        finally:
            with phase(log, "cleanup"):
                work.stop(sup)
                report = sup.shutdown()
        reasons, extra = work.verdict(sup)
        for reason in [*sup.failures, *reasons, *([sup.stop_reason] if sup.stop_reason else [])]:
            verdict.add(reason)
        verdict.children = [r.summary() for r in sup.children.values()]
        # The fork/gRPC rule, checked where it matters: this process must never have loaded grpc.
        verdict.processes = report.as_dict() | {"grpc_imported": "grpc" in sys.modules}
        verdict.extra = extra
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
    try:
        path = write_results(run_dir, verdict)
        reports.write_reports(verdict.as_dict(), run_dir)
    except OSError as exc:
        verdict.add(FailureReason.ARTEFACT_WRITE_FAILED)
        log.error(
            "verdict_write_failed", run_dir=str(run_dir), error=exc.strerror, filename=str(exc.filename or ""),
            outcome=verdict.outcome, exit_code=int(verdict.exit_code), failure_reasons=list(verdict.reasons),
            tests={t["name"]: t["outcome"] for t in verdict.extra.get("tests", [])},
        )  # fmt: skip
        return
    report_html.render_in_child(run_dir, log)
    log.log(
        logs.outcome_level(verdict.outcome), "run_finished",
        outcome=verdict.outcome, exit_code=int(verdict.exit_code), results=str(path),
    )  # fmt: skip


def demo_specs(args: argparse.Namespace) -> list[ChildSpec]:
    if args.demo_streams < 0:
        raise UsageError(f"--demo-streams: must be >= 0, got {args.demo_streams}")
    return [
        ChildSpec(
            name=f"stream:demo-{i}",
            role="stream",
            entrypoint="workers.demo_stream:main",
            args=DemoStreamArgs(duration_s=args.demo_duration, interval_s=args.demo_interval),
            restart=RestartPolicy(),
            preload=True,
        )
        for i in range(args.demo_streams)
    ]


def _start(args: argparse.Namespace, run_dir: Path, run_id: str, timeout_s: float) -> Callable[[Work, float], Verdict]:
    deadline = Deadline.after(timeout_s)
    preflight.make_run_dir(run_dir)
    logs.configure("supervisor", run_id, run_dir / "events.jsonl", level=args.log_level)

    def go(work: Work, stop_grace_s: float) -> Verdict:
        return supervised(work, run_id, run_dir, deadline, stop_grace_s=stop_grace_s, log_level=args.log_level)

    return go


def run_command(args: argparse.Namespace) -> int:
    if args.log_format is not None:
        # Through the environment, so every child (forked or exec'd) renders stdout alike.
        os.environ["IRIS_SMOKE_LOG_FORMAT"] = args.log_format
    if args.demo_streams is not None:
        run_id = preflight.run_id_of(args)
        specs = demo_specs(args)
        run_dir = Path(args.log_dir or "iris-smoke-runs") / run_id
        go = _start(args, run_dir, run_id, args.timeout or 1800.0)
        verdict = go(DemoWork(specs), args.stop_grace or 2.0)
        _print_verdict_line(verdict, run_dir)
        return int(verdict.exit_code)
    plan = preflight.plan(args)
    lock = PrefixLock(plan.prefix)
    try:
        lock.acquire()
    except LockHeld as exc:
        raise UsageError(f"--prefix {plan.prefix}: {exc}") from None
    try:
        go = _start(args, plan.run_dir, plan.run_id, plan.config.timeout_s)
        work = SmokeWork(plan)
        verdict = go(work, plan.config.stop_grace_s)
    finally:
        lock.release()
    if work.smoke is not None:
        work.smoke.progress.finish()
    _print_verdict_line(verdict, plan.run_dir)
    _print_keep_hint(plan, verdict)
    return int(verdict.exit_code)


def _print_verdict_line(verdict: Verdict, run_dir: Path) -> None:
    """One sentence on stderr whatever stdout's format (JSON for journald, ECS, a terminal)."""
    print(reports.verdict_line(verdict.as_dict(), run_dir), file=sys.stderr, flush=True)


def _print_keep_hint(plan: preflight.RunPlan, verdict: Verdict) -> None:
    cluster = verdict.extra.get("cluster", {})
    if plan.config.keep and cluster.get("address"):
        print(
            f"iris-smoke: local cluster kept running at {cluster['address']} (prefix {plan.prefix});\n"
            f"  reuse it:  iris-smoke run --controller {cluster['address']}\n"
            f"  stop it:   pkill -TERM -f 'local_cluster --state-dir {plan.run_dir}/cluster'",
            file=sys.stderr,
        )
