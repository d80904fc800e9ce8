"""The fleet child's work: the read-only checks of the cluster (no job), one RESULT each.

args: `workers.child_args.FleetArgs`: target, the checks selected (in FLEET_CHECKS order), their
      limits (`[fleet]`), `[iris] expect_version`.

Order of work, and why:
1. Wait (bounded) until the controller answers its health check; then time one more health
   check: that is the `/health` latency controller_vitals records.
2. Each selected check asks the controller what it needs (ListWorkers, GetAutoscalerStatus,
   ExecuteRawQuery, GetProcessStatus, GetCurrentUser, GetSchedulerState) and is judged by
   `checks.py`. A slice short of a worker is listed again, every SETTLE_POLL_S for up to
   `settle_s`, before it fails: a slice the autoscaler is booting registers its hosts one by one.
3. A check whose call failed is an `error` naming the call and the controller's code and text; a
   check the controller cannot serve (the embedded one has no database) says what it could not
   measure instead of failing.
Each check is reported as a test result (`test` = the check's name) with `details`, what it
measured, so results.json, summary.md, JUnit and report.html show it like any test.
"""

import time
from collections.abc import Callable

from common import logs
from common.child_exit import ChildExit
from common.deadline import Deadline
from common.jsonshape import JsonObject
from common.outcome import Outcome
from workers.child_args import FleetArgs
from workers.controller import polling
from workers.controller.api import Controller, open_controller
from workers.controller.calls import RPC_TIMEOUT_S
from workers.controller.model import ControllerError, ErrorCode, ProcessStatus
from workers.fleet import checks
from workers.fleet.checks import Finding, Miss, Unmeasured, Vitals
from workers.messages import TestResult, WorkerFinding
from workers.runtime import ChildContext
from workers.smoke_tests.runner import stopped_outcome

CONNECT_TIMEOUT_S = 60.0
HEALTH_PROBE_S = 10.0
SETTLE_POLL_S = 1.0
# A RESULT's per-worker findings, in characters (each field cut to MAX_FINDING_CHARS): even all
# escaped control characters (6 bytes each) stay under MAX_MESSAGE_BYTES.
FINDINGS_CHARS = 100_000
MAX_FINDING_CHARS = 400
# A call the controller refuses us (an identity with Iris's read-only role may not run ExecuteRawQuery)
# or lacks (an older Iris): not measured, a warning, not a slow controller.
REFUSED = frozenset({ErrorCode.PERMISSION_DENIED, ErrorCode.UNAUTHENTICATED, ErrorCode.API_MISMATCH})

Check = Callable[[ChildContext, Controller, "float | None"], Finding]


def _settled(ctx: ChildContext, judge: Callable[[], tuple[Finding, bool]]) -> Finding:
    """`judge()` again every SETTLE_POLL_S, for up to `settle_s`, until it says its finding is settled."""
    args: FleetArgs = ctx.args
    settle = Deadline.after(args.limits.settle_s)
    while True:
        finding, settled = judge()
        if settled or settle.expired() or polling.wait_or_stop(ctx, settle.cap(SETTLE_POLL_S)):
            return finding


def _slices(ctx: ChildContext, controller: Controller, _health_s: float | None) -> Finding:
    """Settled once no slice is short and a multi-host group, if the cluster has one, has a slice
    listed (a cluster the run owns starts empty: its slices come up for the run's tests; a standing
    cluster whose multi-host groups are all scaled to zero costs the check `settle_s`)."""

    def judge() -> tuple[Finding, bool]:
        status, workers = controller.autoscaler(), controller.list_workers()
        finding = checks.slices_complete(workers, status)
        multi_host = {g.name for g in status.groups if g.hosts_per_slice > 1}
        listed = {w.scale_group for w in workers if w.slice_name}
        return finding, not finding.problems and (not multi_host or bool(multi_host & listed))

    return _settled(ctx, judge)


def _attributes(ctx: ChildContext, controller: Controller, _health_s: float | None) -> Finding:
    """Settled once a worker is listed (an owned cluster starts with none)."""

    def judge() -> tuple[Finding, bool]:
        finding = checks.worker_attributes(controller.list_workers(), controller.autoscaler())
        return finding, not finding.skipped

    return _settled(ctx, judge)


def _autoscaler(_ctx: ChildContext, controller: Controller, _health_s: float | None) -> Finding:
    return checks.autoscaler_health(controller.autoscaler())


def _unmeasured(exc: ControllerError) -> Unmeasured:
    miss = {ErrorCode.UNIMPLEMENTED: Miss.NOT_SERVED}.get(
        exc.code, Miss.REFUSED if exc.code in REFUSED else Miss.FAILED
    )
    return Unmeasured(miss, f"{exc.method}: {exc.code} {exc.details}".strip())


def _vitals(ctx: ChildContext, controller: Controller, health_s: float | None) -> Finding:
    args: FleetArgs = ctx.args
    query: float | Unmeasured
    try:
        query = controller.database_ping()
    except ControllerError as exc:
        query = _unmeasured(exc)
        if exc.code in (ErrorCode.DEADLINE_EXCEEDED, ErrorCode.CONTROLLER_TIMEOUT):
            query = args.limits.query_fail_s + 1.0  # the call's own limit is past the failure limit
    process: ProcessStatus | Unmeasured
    try:
        process = controller.process_status()
    except ControllerError as exc:
        process = _unmeasured(exc)
    return checks.controller_vitals(Vitals(health_s, query, process), args.limits, args.expect_version)


def _budget(ctx: ChildContext, controller: Controller, _health_s: float | None) -> Finding:
    args: FleetArgs = ctx.args
    try:
        band = controller.user_band()
    except ControllerError as exc:
        if exc.code is not ErrorCode.UNIMPLEMENTED:
            raise
        return Finding(skipped=f"{exc.method}: {exc.details}")
    return checks.scheduler_budget(band, args.target.priority_band.value)


CHECKS: dict[str, Check] = {
    "controller_vitals": _vitals,
    "slices_complete": _slices,
    "worker_attributes": _attributes,
    "autoscaler_health": _autoscaler,
    "scheduler_budget": _budget,
}


def _health_latency(controller: Controller) -> float | None:
    started = time.monotonic()
    return time.monotonic() - started if controller.serving(HEALTH_PROBE_S) else None


def _report(ctx: ChildContext, name: str, outcome: Outcome, error: str, duration_s: float,
            details: JsonObject, workers: tuple[WorkerFinding, ...] = ()) -> None:  # fmt: skip
    ctx.log.log(logs.outcome_level(outcome), "fleet_check_finished", check=name, outcome=outcome, error=error,
                duration_s=duration_s, **details)  # fmt: skip
    ctx.channel.send(TestResult(name, outcome, duration_s, error, details=details, workers=_capped(workers)))


def _capped(workers: tuple[WorkerFinding, ...]) -> tuple[WorkerFinding, ...]:
    """The first findings that fit FINDINGS_CHARS: the RESULT must stay under the message cap, or the
    check's verdict would be lost with them (the check's error still counts them all)."""
    kept: list[WorkerFinding] = []
    left = FINDINGS_CHARS
    for f in workers:
        cut = WorkerFinding(f.worker_id[:MAX_FINDING_CHARS], f.problem[:MAX_FINDING_CHARS],
                            f.slice[:MAX_FINDING_CHARS], f.slice_host)  # fmt: skip
        left -= len(cut.worker_id) + len(cut.problem) + len(cut.slice)
        if left < 0:
            break
        kept.append(cut)
    return tuple(kept)


def _run_one(ctx: ChildContext, controller: Controller, name: str, health_s: float | None) -> None:
    started = time.monotonic()
    try:
        finding = CHECKS[name](ctx, controller, health_s)
    except ControllerError as exc:
        error = f"{exc.method}: {exc.code} {exc.details}".strip()
        _report(ctx, name, Outcome.ERROR, error, round(time.monotonic() - started, 3), {})
        return
    _report(ctx, name, finding.outcome, finding.error, round(time.monotonic() - started, 3), dict(finding.details),
            finding.workers)  # fmt: skip


def main(ctx: ChildContext) -> int:
    args: FleetArgs = ctx.args
    # SELECT 1 is timed up to its failure limit, and a little past it: the call's limit must be longer.
    call_limit_s = max(RPC_TIMEOUT_S, args.limits.query_fail_s + 1.0)
    with open_controller(args.target, ctx.deadline, call_limit_s) as controller:
        if not controller.serving(min(CONNECT_TIMEOUT_S, ctx.deadline.remaining()), ctx.stop.fd):
            stopped = ctx.stop.requested() or ctx.deadline.expired()
            outcome = stopped_outcome(ctx) if stopped else Outcome.ERROR
            error = "stopped before the checks started" if stopped else "controller not reachable"
            for name in args.checks:
                _report(ctx, name, outcome, error, 0.0, {})
            return ChildExit.OK
        health_s = _health_latency(controller)
        for name in args.checks:
            if ctx.stop.requested() or ctx.deadline.expired():
                _report(ctx, name, stopped_outcome(ctx), "stopped before the check ran", 0.0, {})
                continue
            _run_one(ctx, controller, name, health_s)
    ctx.log.info("fleet_checks_done", checks=list(args.checks))
    return ChildExit.OK
