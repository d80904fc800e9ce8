"""`iris-smoke run`: one supervised run, from a fresh run directory to `results.json`.

Until the cluster pieces exist, the run's work is the demo: N stream children, each a
real subprocess tree writing JSON lines, for `--demo-duration` seconds. Everything
around it is the real thing: the deadline, the child table, signals, the escalation,
the audit and the verdict.
"""

import argparse
import re
import secrets
import sys
import time
from pathlib import Path

from common import linux, logs
from common.deadline import Deadline
from common.outcome import FailureReason
from supervisor.arbiter import Supervisor
from supervisor.children import ChildSpec
from supervisor.cli import UsageError
from supervisor.phases import phase
from supervisor.restart import RestartPolicy
from supervisor.verdict import Verdict, write_results

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def prepare_run_dir(log_dir: Path, run_id: str) -> Path:
    if not RUN_ID_PATTERN.match(run_id):
        raise UsageError(f"--run-id: must match {RUN_ID_PATTERN.pattern}, got {run_id!r}")
    run_dir = log_dir / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise UsageError(f"--run-id: run directory {run_dir} exists already; pick another run id") from None
    except OSError as exc:
        raise UsageError(f"--log-dir: cannot create {run_dir}: {exc.strerror}") from None
    return run_dir


def demo_specs(args: argparse.Namespace) -> list[ChildSpec]:
    if args.demo_streams < 0:
        raise UsageError(f"--demo-streams: must be >= 0, got {args.demo_streams}")
    return [
        ChildSpec(
            name=f"stream:demo-{i}",
            role="stream",
            entrypoint="workers.demo_stream:main",
            args={"duration_s": args.demo_duration, "interval_s": args.demo_interval},
            restart=RestartPolicy(),
            preload=True,
        )
        for i in range(args.demo_streams)
    ]


def supervise(
    specs: list[ChildSpec],
    run_id: str,
    run_dir: Path,
    deadline: Deadline,
    *,
    stop_grace_s: float,
    log_level: str,
) -> Verdict:
    """Run `specs` under one supervisor until they finish, the deadline passes or a signal
    arrives; always stop and audit everything; return the verdict (already written)."""
    log = logs.get_logger()
    linux.set_child_subreaper()
    verdict = Verdict(run_id=run_id, started_unix=time.time(), timeout_s=round(deadline.remaining(), 3))
    log.info("run_started", run_dir=str(run_dir), timeout_s=verdict.timeout_s, argv=sys.argv[1:])
    with Supervisor(run_id, run_dir, deadline, stop_grace_s=stop_grace_s, log_level=log_level) as sup:
        try:
            with phase(log, "children"):
                for spec in specs:
                    sup.add(spec)
                sup.run_until(lambda: all(r.finished for r in sup.children.values()))
        except Exception:
            log.exception("run_crashed")
            verdict.add(FailureReason.INTERNAL_ERROR)
        finally:
            with phase(log, "cleanup"):
                report = sup.shutdown()
        for reason in [*sup.failures, *([sup.stop_reason] if sup.stop_reason else [])]:
            verdict.add(reason)
        verdict.children = [r.summary() for r in sup.children.values()]
        # The fork/gRPC rule, checked where it matters: this process must never have loaded grpc.
        verdict.processes = report.as_dict() | {"grpc_imported": "grpc" in sys.modules}
    path = write_results(run_dir, verdict)
    log.info("run_finished", outcome=verdict.outcome, exit_code=int(verdict.exit_code), results=str(path))
    return verdict


def run_command(args: argparse.Namespace) -> int:
    run_id = args.run_id or new_run_id()
    specs = demo_specs(args)
    run_dir = prepare_run_dir(Path(args.log_dir), run_id)
    deadline = Deadline.after(args.timeout)
    logs.configure("supervisor", run_id, run_dir / "events.jsonl", level=args.log_level)
    verdict = supervise(
        specs, run_id, run_dir, deadline, stop_grace_s=args.stop_grace, log_level=args.log_level
    )
    return int(verdict.exit_code)
