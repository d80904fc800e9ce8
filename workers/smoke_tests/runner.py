"""The tests child's work: submits the smoke test's jobs, all at once, and reports one RESULT per test.

args: `workers.child_args.SuiteArgs`: target, job_timeout_s, standard (the standard tests to
      run), custom (`[[tests]]` entries: name, argv, device, variant, count, replicas,
      group_by, constraints [{key, op, value}], expect), and the sizing overrides
      (hosts_per_slice None: num_vms of the accelerator's scale group).

Order of work, and why:
1. Wait until the controller answers its health check, then read the workers and the
   autoscaler's status (`shape.py`): the standard tests run on the first accelerator
   group (TPU, else GPU, else CPU), and the coscheduled test needs that group's slice
   size (hosts, chips per host), from its live workers, else from the autoscaler.
2. Build the suite (`suite.py`), then submit every job of every test before waiting for
   any, so the autoscaler sees all the demand at once; then send READY.
3. Poll this run's jobs (one listing of the jobs under the run's root per interval). A test ends when all
   its jobs are finished: it passes when each job's final state is what it expects (and,
   for the coscheduled test, task i ran on host i of one slice, every replica listed).
   Failed tasks' last log lines are fetched for the report. A test still running
   `job_timeout_s` after its submission times out and its jobs are terminated.
4. However the child ends (all tests done, a stop request, the deadline): the sweep
   (`sweep.py`) terminates every unfinished job under the run's root and confirms each
   ended, tasks included, within its own budget; then each unfinished test is reported as
   `timeout`, and `jobs_confirmed` says what the sweep saw.
Every controller call is capped at `call_limit_s` (not the adapters' 10 s): a stop that
arrives during one must leave the sweep its budget inside the child's grace.
"""

import contextlib
import re
import time
from collections.abc import Callable, Sequence

from common import logs
from common.child_exit import ChildExit
from common.deadline import Deadline
from common.errors import ConfigError
from common.jsonshape import Json, JsonObject
from common.outcome import Outcome
from workers.child_args import TESTS_POLL_INTERVAL_S, SuiteArgs
from workers.controller import polling
from workers.controller.api import Controller, open_controller
from workers.controller.calls import rpc_timeout
from workers.controller.model import (
    FAILED_TASK_STATES,
    AutoscalerStatus,
    ControllerError,
    ErrorCode,
    Job,
    JobRequest,
    JobState,
    Task,
    job_finished,
    task_finished,
)
from workers.messages import JobReport, LaunchedJobs, LogTail, TaskReport, TestResult, TestsReady
from workers.runtime import ChildContext
from workers.smoke_tests import sweep, task_logs
from workers.smoke_tests.checks import placement_problem, refusal
from workers.smoke_tests.iris_cases import IRIS_CASES, CaseSettings, iris_cases
from workers.smoke_tests.parity_tests import PARITY_TESTS, PROBES, ParitySettings, parity_tests
from workers.smoke_tests.shape import DEFAULT_REGION_ATTRIBUTE, Shape, shape_of, unknown_groups
from workers.smoke_tests.suite import (
    Accelerator,
    PlannedTest,
    custom_test,
    pick_accelerator,
    standard_tests,
)
from workers.smoke_tests.watch import Verdict

CONNECT_TIMEOUT_S = 60.0
SHAPE_SETTLE_S = 3.0
LOG_TAIL_LINES = 50
MAX_LOG_TAILS = 8  # failed tasks per test whose logs are fetched
MAX_LINE_CHARS = 300
MAX_TASKS_REPORTED = 64
_WAITING = frozenset({JobState.PENDING})
# A launch that finds the controller unreachable is retried this long: a tunnel or a
# controller restarting is a blip; longer is an outage, and the test errs.
LAUNCH_RETRY_S = 10.0
LAUNCH_RETRY_WAIT_S = 0.25


class SmokeTests:
    def __init__(
        self, ctx: ChildContext, controller: Controller, runs: list[PlannedTest], job_timeout_s: float
    ) -> None:
        self.ctx = ctx
        self.controller = controller
        self.runs = runs
        self.job_timeout_s = job_timeout_s
        self.jobs: dict[str, Job] = {}
        self.outage = polling.outage_for(ctx)
        self.launched_at = 0.0

    def _timeout(self) -> float:
        return rpc_timeout(self.ctx.deadline, self.ctx.args.call_limit_s)

    def launch_all(self) -> None:
        self.launched_at = time.time()
        for run in [r for r in self.runs if r.skip]:
            self.finish(run, Outcome.SKIPPED, run.skip, fetch=False)
        for run in self.pending():
            if not self._launch_run(run):
                break
        if self.ctx.stop.requested():
            return  # end() terminates what was launched and reports the rest
        for run in self.pending():
            if run.error:
                self.terminate(run.job_ids, self._timeout())
                self.finish(run, Outcome.ERROR, run.error)

    def _launch_run(self, run: PlannedTest) -> bool:
        """Launch a test's jobs; False when the controller refused a launch for who we are: no
        other launch can succeed then, and every test not launched yet is reported with why."""
        run.started = time.monotonic()
        run.ends = Deadline.after(self.job_timeout_s)
        for request in run.requests:
            if self.ctx.stop.requested():
                return False
            try:
                job_id = self._launch(request)
            except ControllerError as exc:
                run.error = f"launch of {request.name} failed: {exc.code} {exc.details}"
                if exc.code in polling.REFUSED_CODES:
                    polling.call_failed(self.ctx, self.outage, "job_launch_failed", exc, test=run.name,
                                        job=request.name)  # fmt: skip
                    for other in self.pending():
                        other.error = other.error or f"not launched: the controller refused LaunchJob ({exc.code})"
                    return False
                self.ctx.log.error("job_launch_failed", test=run.name, job=request.name, code=exc.code,
                                   details=exc.details)  # fmt: skip
                return True
            run.job_ids.append(job_id)
            self.ctx.log.info("job_launched", test=run.name, job=job_id, name=request.name)
        return True

    def _launch(self, request: JobRequest) -> str:
        """LaunchJob, retried while the controller is unreachable. A retry answered
        `already_exists` means an earlier attempt created the job and lost its reply: the
        job is ours (its name is under this run's root), so it is looked up, not relaunched."""
        give_up = Deadline.after(LAUNCH_RETRY_S)
        retried = False
        while True:
            try:
                return self.controller.launch(request)
            except ControllerError as exc:
                if retried and exc.code is ErrorCode.ALREADY_EXISTS:
                    return self._launched_id(request, exc)
                if exc.code is not ErrorCode.UNAVAILABLE or give_up.expired():
                    raise
                self.ctx.log.warning("job_launch_retried", job=request.name, code=exc.code, details=exc.details)
                if polling.wait_or_stop(self.ctx, LAUNCH_RETRY_WAIT_S):
                    raise
                retried = True

    def _launched_id(self, request: JobRequest, exc: ControllerError) -> str:
        full_name = self.ctx.args.target.job_prefix + request.name
        found = [j.job_id for j in self.controller.list_jobs() if full_name in (j.name, j.job_id)]
        if not found:
            raise exc
        return found[0]

    def poll(self) -> None:
        try:
            listing = self.controller.list_jobs()
        except ControllerError as exc:
            polling.call_failed(self.ctx, self.outage, "tests_poll_failed", exc)
            return
        polling.call_succeeded(self.ctx, self.outage)
        self.jobs.update((j.job_id, j) for j in listing)
        refusals = self._scale_up_failures()
        for run in self.pending():
            if run.watch is not None:
                self._step(run)
                continue
            states = [self._state(job_id) for job_id in run.job_ids]
            refused = next((why for r, why in refusals if r is run), "")
            if all(job_finished(s) for s in states):
                self.judge(run, states)
            elif refused:
                self.terminate(self._unfinished(run), self._timeout())
                self.finish(run, Outcome.FAILED, refused)
            elif run.ends is not None and run.ends.expired():
                self._time_out(run)

    def _step(self, run: PlannedTest) -> None:
        """One look of a watched test (workers/smoke_tests/watch.py); its verdict ends it."""
        assert run.watch is not None
        try:
            verdict = run.watch.step(WatchedTest(self, run))
        except ControllerError as exc:
            verdict = self._watch_call_failed(run, exc)
        if verdict is not None:
            self.terminate(self._unfinished(run), self._timeout())
            self.finish(run, verdict.outcome, verdict.reason, details=verdict.details)
        elif run.ends is not None and run.ends.expired():
            self._time_out(run)

    def _time_out(self, run: PlannedTest) -> None:
        # The hung tasks' last lines first: what a task printed before it hung is why.
        tails = self._tails(run, lambda t: not task_finished(t.state))
        self.terminate(self._unfinished(run), self._timeout())
        last = f"; last failed call: {run.last_call_error}" if run.last_call_error else ""
        self.finish(run, Outcome.TIMEOUT, f"not finished within job_timeout_s={self.job_timeout_s:g}{last}",
                    tails=tails)  # fmt: skip

    def _watch_call_failed(self, run: PlannedTest, exc: ControllerError) -> Verdict | None:
        """A call the cluster does not implement skips the test with its reason; a refused
        credential is an error; anything else is tried again at the next poll."""
        if exc.code is ErrorCode.UNIMPLEMENTED:
            return Verdict(Outcome.SKIPPED, f"{exc.method}: {exc.details}")
        polling.call_failed(self.ctx, self.outage, "test_call_failed", exc, test=run.name)
        if exc.code in polling.REFUSED_CODES:
            return Verdict(Outcome.ERROR, f"{exc.method} refused: {exc.code} {exc.details}".strip())
        run.last_call_error = f"{exc.method} {exc.code} {exc.details}".strip()
        return None

    def _unfinished(self, run: PlannedTest) -> list[str]:
        """The test's jobs not finished yet, its jobs' children included."""
        ids = set(run.job_ids) | {c.job_id for j in run.job_ids for c in self._children(j)}
        return [j for j in sorted(ids) if not job_finished(self._state(j))]

    def _children(self, job_id: str) -> list[Job]:
        parent = self.jobs.get(job_id)
        if parent is None:
            return []
        return [j for j in self.jobs.values() if j.name.startswith(parent.name + "/")]

    def _scale_up_failures(self) -> list[tuple[PlannedTest, str]]:
        """Tests the autoscaler says it cannot serve now: a failed scale-up of a group that serves
        one of their pending jobs since the run launched, or demand it reports as unsatisfiable."""
        # A watched test judges its own waiting jobs (pending_reason's is meant never to fit).
        waiting = [(r, j) for r in self.pending() if r.watch is None for j in r.job_ids if self._state(j) in _WAITING]
        if not waiting:
            return []
        try:
            status = self.controller.autoscaler()
        except ControllerError as exc:
            self.ctx.log.warning("autoscaler_status_failed", code=exc.code, details=exc.details)
            return []
        found = []
        for run, job_id in waiting:
            why = refusal(status, run.requests, job_id, self.launched_at)
            if why:
                self.ctx.log.warning("test_refused_by_autoscaler", test=run.name, job=job_id, reason=why)
                found.append((run, f"autoscaler: {why}"))
        return found

    def pending(self) -> list[PlannedTest]:
        return [r for r in self.runs if not r.done]

    def _state(self, job_id: str) -> JobState:
        job = self.jobs.get(job_id)
        return job.state if job is not None else JobState.UNSPECIFIED

    def judge(self, run: PlannedTest, states: list[JobState]) -> None:
        wrong = [(j, s) for j, s in zip(run.job_ids, states, strict=True) if s != run.expect]
        if wrong:
            job_id, state = wrong[0]
            error = self.jobs[job_id].error
            reason = f"job {job_id} ended {state}, expected {run.expect}" + (f": {error}" if error else "")
            self.finish(run, Outcome.FAILED, reason)
        elif run.check_placement:
            problem = self._placement_problem(run.job_ids[0], run.requests[0].replicas)
            self.finish(run, Outcome.FAILED if problem else Outcome.PASSED, problem)
        elif run.placement:
            problem = self._constraint_problem(run)
            self.finish(run, Outcome.FAILED if problem else Outcome.PASSED, problem)
        else:
            self.finish(run, Outcome.PASSED, "")

    def _placement_problem(self, job_id: str, replicas: int) -> str:
        """Task i must have run on host i of one slice, each on its own host; every replica is checked."""
        tasks, problem = self._every_task(job_id, replicas)
        if problem:
            return problem
        try:
            workers = {w.worker_id: w for w in self.controller.list_workers()}
        except ControllerError as exc:
            return f"cannot check placement: ListWorkers {exc.code}"
        slices = set()
        for t in tasks:
            worker = workers.get(t.worker_id)
            if worker is None:  # scaled down already: its name still says which host it was
                index_ok = _named_as_host(t.worker_id, t.task_index)
            else:
                index_ok = worker.slice_host == t.task_index
                slices.add(worker.slice_name)
            if not index_ok:
                return f"task {t.task_index} ran on {t.worker_id}, not on host {t.task_index} of its slice"
        if len({t.worker_id for t in tasks}) != len(tasks):
            return "two tasks shared a host"
        return f"tasks spread over slices {sorted(slices)}" if len(slices) > 1 else ""

    def _constraint_problem(self, run: PlannedTest) -> str:
        """Each task ran on a worker meeting its job's constraints; a child job exists, succeeded and,
        where the backend inherits the key, ran where its parent's constraints hold."""
        try:
            workers = {w.worker_id: w for w in self.controller.list_workers()}
        except ControllerError as exc:
            return f"cannot check placement: ListWorkers {exc.code}"
        for request, job_id in zip(run.requests, run.job_ids, strict=True):
            checked = [(job_id, request.constraints, request.replicas)]
            if request.child is not None:
                children = self._children(job_id)
                if not children:
                    return f"job {job_id}: its task submitted no child job"
                bad = next((c for c in children if c.state != JobState.SUCCEEDED), None)
                if bad is not None:
                    return f"child job {bad.job_id} ended {bad.state}{bad.error_suffix}"
                wanted = request.constraints if run.child_inherits else ()
                checked += [(c.job_id, wanted + request.child.constraints, request.child.replicas) for c in children]
            for checked_id, constraints, replicas in checked:
                tasks, problem = self._every_task(checked_id, replicas)
                problem = problem or placement_problem(tasks, workers, constraints)
                if problem:
                    return f"job {checked_id}: {problem}"
        return ""

    def _every_task(self, job_id: str, replicas: int) -> tuple[list[Task], str]:
        """The job's tasks by index, or why they cannot be checked: a placement check that saw
        no task, or fewer than the job's replicas, has checked nothing and must not pass."""
        try:
            tasks = sorted(self.controller.list_tasks(job_id), key=lambda t: t.task_index)
        except ControllerError as exc:
            return [], f"cannot check placement: ListTasks of {job_id} failed: {exc.code} {exc.details}".strip()
        if len(tasks) != replicas:
            listed = f"listed {len(tasks)} tasks, expected {replicas} (its replicas)"
            return tasks, f"cannot check placement: ListTasks of {job_id} {listed}"
        return tasks, ""

    def _tasks(self, job_id: str) -> list[Task]:
        try:
            return self.controller.list_tasks(job_id)
        except ControllerError as exc:
            self.ctx.log.warning("list_tasks_failed", job=job_id, code=exc.code, details=exc.details)
            return []

    def _log_tail(self, job_id: str, index: int) -> list[str]:
        if self.ctx.stop.requested():
            return ["<logs not fetched: the tests child is stopping>"]  # the sweep needs the time
        try:
            lines = self.controller.task_log_tail(job_id, index, LOG_TAIL_LINES)
        except ControllerError as exc:
            polling.call_failed(self.ctx, self.outage, "log_tail_failed", exc, job=job_id, task=index)
            return [f"<logs unavailable: {exc.code} {exc.details}>"]
        return [line[:MAX_LINE_CHARS] for line in lines]

    def _job_report(self, job_id: str, tasks: list[Task]) -> JobReport:
        job = self.jobs.get(job_id)
        reported = tuple(
            TaskReport(t.task_index, t.state, t.worker_id, t.exit_code) for t in tasks[:MAX_TASKS_REPORTED]
        )
        return JobReport(job_id, job.name if job else "", self._state(job_id), job.error if job else "",
                         job.exit_code if job else 0, reported)  # fmt: skip

    def _tails(self, run: PlannedTest, chosen: Callable[[Task], bool]) -> list[LogTail]:
        """The last log lines of the test's `chosen` tasks, at most MAX_LOG_TAILS of them."""
        tails: list[LogTail] = []
        for job_id in run.job_ids:
            self._add_tails(tails, job_id, self._tasks(job_id), chosen)
        return tails

    def _add_tails(self, tails: list[LogTail], job_id: str, tasks: list[Task], chosen: Callable[[Task], bool]) -> None:
        for t in tasks:
            if chosen(t) and len(tails) < MAX_LOG_TAILS:
                tails.append(LogTail(job_id, t.task_index, tuple(self._log_tail(job_id, t.task_index))))

    def finish(
        self, run: PlannedTest, outcome: Outcome, error: str, *, fetch: bool = True,
        tails: list[LogTail] | None = None, details: JsonObject | None = None,
    ) -> None:  # fmt: skip
        """Report the test; with `tails` fetched already (a timed-out test's), else its failed tasks' now."""
        jobs: list[JobReport] = []
        fetched = tails is not None
        tails = tails if tails is not None else []
        for job_id in run.job_ids:
            tasks = self._tasks(job_id) if fetch else []
            jobs.append(self._job_report(job_id, tasks))
            task_logs.keep(self.ctx, self.controller, job_id, tasks)
            if not fetched:
                self._add_tails(tails, job_id, tasks, lambda t: t.state in FAILED_TASK_STATES)
        run.done = True
        duration = round(time.monotonic() - run.started, 3) if run.started else 0.0
        level = logs.outcome_level(outcome)
        self.ctx.log.log(level, "test_finished", test=run.name, outcome=outcome, duration_s=duration, error=error)
        self.ctx.channel.send(TestResult(run.name, outcome, duration, error, tuple(jobs), tuple(tails), details or {}))

    def terminate(self, job_ids: Sequence[str], timeout_s: float) -> None:
        """Terminate every job in `job_ids`, bounded by `timeout_s` in all."""
        if not job_ids:
            return
        for job_id, error in self.controller.terminate(job_ids, timeout_s).items():
            if error is None:
                self.ctx.log.info("job_terminated", job=job_id)
            else:
                self.ctx.log.warning("job_terminate_failed", job=job_id, code=error.code, details=error.details)
        # Their states now, for the report (a terminated job is KILLED at once on both wires).
        with contextlib.suppress(ControllerError):
            self.jobs.update((j.job_id, j) for j in self.controller.list_jobs())

    def end(self) -> None:
        """However the child ends: sweep the run's root (every job launched or listed, and any a
        lost LaunchJob reply hid from us), then report the tests still pending as timeout."""
        started = time.monotonic()
        launched = [j for r in self.runs for j in r.job_ids]
        done = sweep.sweep(self.ctx, sweep.known_states(self.jobs, launched))
        self.jobs.update(done.jobs)
        reason = self.ctx.stop.reason or "deadline"
        for run in self.pending():
            self.finish(run, stopped_outcome(self.ctx), f"stopped ({reason}) before the test finished", fetch=False)
        sweep.report(self.ctx, done, started)


class WatchedTest:
    """A watched test's view of the run (`watch.TestView`): its jobs, and launching and terminating more."""

    def __init__(self, tests: SmokeTests, run: PlannedTest) -> None:
        self.tests, self.run, self.controller = tests, run, tests.controller

    def jobs(self) -> list[Job]:
        return [self.tests.jobs.get(j) or Job(j, "", JobState.UNSPECIFIED) for j in self.run.job_ids]

    def tasks(self, job_id: str) -> list[Task]:
        return sorted(self.controller.list_tasks(job_id), key=lambda t: t.task_index)

    def launch(self, request: JobRequest) -> str:
        job_id = self.tests._launch(request)
        self.run.job_ids.append(job_id)
        self.tests.ctx.log.info("job_launched", test=self.run.name, job=job_id, name=request.name)
        return job_id

    def terminate(self, job_ids: Sequence[str]) -> None:
        self.tests.terminate(job_ids, self.tests._timeout())

    def elapsed_s(self) -> float:
        return time.monotonic() - self.run.started

    def note(self, event: str, **fields: Json) -> None:
        self.tests.ctx.log.info(event, test=self.run.name, **fields)


def _named_as_host(worker_id: str, index: int) -> bool:
    """Whether a worker that is gone was named as host `index` of its slice.

    Embedded workers are `<slice>-w<i>`; Iris's are `worker-<slice>-<i>-<hash>`.
    """
    return re.search(rf"(-w{index}|-{index}-[0-9a-f]+)$", worker_id) is not None


def _settings(args: SuiteArgs, controller: Controller) -> ParitySettings:
    if args.probe not in PROBES:
        raise ConfigError(f"probe: must be one of {', '.join(PROBES)}, got {args.probe!r}")
    return ParitySettings(
        region=args.region,
        region_attribute=args.region_attribute or DEFAULT_REGION_ATTRIBUTE,
        probe=args.probe,
        inherited_keys=controller.inherited_constraint_keys,
    )


def _tests_from_args(args: SuiteArgs, acc: Accelerator, shape: Shape, settings: ParitySettings) -> list[PlannedTest]:
    job_timeout_s = args.job_timeout_s
    runs = []
    for name in args.standard:
        if name in PARITY_TESTS:
            runs += parity_tests([name], shape, settings, job_timeout_s)
        elif name in IRIS_CASES:
            cases = CaseSettings(many_tasks=args.many_tasks, endpoint_hold_s=args.endpoint_hold_s)
            runs += iris_cases([name], cases, job_timeout_s)
        else:
            runs += standard_tests([name], acc, job_timeout_s)
    runs += [custom_test(spec, job_timeout_s) for spec in args.custom]
    names = [r.name for r in runs]
    duplicate = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if duplicate is not None:
        raise ConfigError(f"tests: duplicate test name {duplicate!r}")
    return runs


def _autoscaler_status(ctx: ChildContext, controller: Controller) -> AutoscalerStatus | ControllerError | None:
    """The autoscaler's status once the controller serves; the error if its API is not ours; None if unreachable."""
    args: SuiteArgs = ctx.args
    ends = Deadline.after(min(CONNECT_TIMEOUT_S, args.job_timeout_s))
    if not controller.serving(ends.remaining(), ctx.stop.fd):
        return None
    outage = polling.outage_for(ctx)
    for _ in polling.poll_every(ctx, TESTS_POLL_INTERVAL_S):
        try:
            return controller.autoscaler()
        except ControllerError as exc:
            polling.call_failed(ctx, outage, "autoscaler_status_failed", exc)
            if outage.hopeless:
                return exc
        if ends.expired():
            break
    return None


def _shape(ctx: ChildContext, controller: Controller, status: AutoscalerStatus) -> Shape:
    """The cluster's groups and their attributes; waits (bounded) for the first worker of a group
    whose slices are booting when the controller does not describe the group's attributes itself."""
    ends = ctx.deadline.within(CONNECT_TIMEOUT_S)
    # Iris lists a group's first slices a moment after it answers its health check.
    settle = Deadline.after(SHAPE_SETTLE_S)
    workers = []
    for _ in polling.poll_every(ctx, TESTS_POLL_INTERVAL_S / 4):
        try:
            workers = controller.list_workers()
            status = controller.autoscaler()
        except ControllerError as exc:
            ctx.log.warning("shape_discovery_failed", code=exc.code, details=exc.details)
        missing = unknown_groups(status, workers)
        if not (workers or status.groups) and not ends.expired():
            continue  # a backend without an autoscaler: its workers, once registered, are all there is
        described = workers or any(g.attributes for g in status.groups)
        if not described and not settle.expired():
            continue
        if not missing or ends.expired():
            if missing:
                ctx.log.warning("groups_without_attributes", groups=missing)
            break
    return shape_of(status, workers)


def stopped_outcome(ctx: ChildContext) -> Outcome:
    """A test the child's stop cut short: cancelled when stopped (the supervisor, which knows why it
    stopped us, says `timeout` when that was the run's deadline), timeout at our own deadline."""
    return Outcome.CANCELLED if ctx.stop.reason == "sigterm" else Outcome.TIMEOUT


def _report_all(ctx: ChildContext, names: Sequence[str], outcome: Outcome, error: str) -> None:
    for name in names:
        ctx.channel.send(TestResult(name, outcome, 0.0, error))


def main(ctx: ChildContext) -> int:
    args: SuiteArgs = ctx.args
    with open_controller(args.target, ctx.deadline, args.call_limit_s) as controller:
        status = _autoscaler_status(ctx, controller)
        if not isinstance(status, AutoscalerStatus):
            stopped = ctx.stop.requested() or ctx.deadline.expired()
            error = "stopped before the tests started" if stopped else "controller not reachable"
            if isinstance(status, ControllerError):
                error = f"{status.code}: {status.method}: {status.details}"
            _report_all(ctx, args.names, stopped_outcome(ctx) if stopped else Outcome.ERROR, error)
            return ChildExit.OK
        try:
            shape = _shape(ctx, controller, status)
            acc = pick_accelerator(shape, args.hosts_per_slice, args.accelerator)
            runs = _tests_from_args(args, acc, shape, _settings(args, controller))
        except (ConfigError, KeyError, TypeError, ValueError) as exc:
            ctx.log.error("tests_config_invalid", error=str(exc))
            _report_all(ctx, args.names, Outcome.ERROR, f"invalid test configuration: {exc}")
            return ChildExit.CONFIG
        ctx.log.info("tests_starting", tests=[r.name for r in runs], device=acc.device, variant=acc.variant,
                     hosts_per_slice=acc.hosts_per_slice, chips_per_host=acc.chips_per_host)  # fmt: skip
        tests = SmokeTests(ctx, controller, runs, args.job_timeout_s)
        try:
            tests.launch_all()
            ctx.channel.send(TestsReady(tuple(LaunchedJobs(r.name, tuple(r.job_ids)) for r in runs)))
            for _ in polling.poll_every(ctx, args.poll_interval_s):
                tests.poll()
                if not tests.pending():
                    break
        finally:
            tests.end()
    ctx.log.info("tests_done", reason=ctx.stop.reason or "finished")
    return ChildExit.OK
