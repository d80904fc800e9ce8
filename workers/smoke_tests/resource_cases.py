"""Iris's smoke cases about resources (planned in `iris_cases.py`); each safe on a standing cluster.

- cancel_releases_resources: a job sized to fill one worker's CPU, pinned to it by constraint,
  is terminated once it runs; a job of the same size pinned to the same worker must then start
  within the job timeout (marin issue #3553: a cancelled job's resources stayed committed). Both
  are batch jobs: on Iris a batch job never preempts (an interactive one evicts batch tasks, a
  bystander's or the run's own, to fit). A
  worker is pinned by its slice host (`tpu-name` and `tpu-worker-id`, unique by construction), or
  as the only worker listed of a scale group the autoscaler says is at capacity (no twin can
  come up and take the job). CPU workers while there is one. Only an idle worker (no task running) is filled:
  on a busy standing cluster a busy one could not take the fill until someone else's tasks end,
  and a worker that lists no task yet cannot take it is the leak this test looks for. None
  pinnable, or every pinnable one busy for PIN_WAIT_S: skipped, saying why.
- pending_reason: a job asking more CPU than any machine has (a million cores) must be pending
  with a reason naming the CPU ("insufficient cpu"), or refused at launch with a reason naming
  it: Iris 0.2.227 refuses at submit a job no scale group's VM could hold (`failed_precondition`,
  "... per-VM capacity: cpu (cpu: need 1000000000, available 2000)"). It can never run, and no
  group can take it, so an autoscaler is asked for nothing; the runner terminates it at the verdict.
- workdir_offload: a workdir file of 64 KiB of run-unique bytes (above Iris's 10 KB offload
  threshold: it goes through the blob store) must reach the task intact: the task compares its
  sha256 with the one planned and exits 4 on a mismatch (its log line says both).
"""

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace

from common.controller_target import PriorityBand
from common.outcome import Outcome
from workers.controller.model import (
    AutoscalerStatus,
    Constraint,
    ControllerError,
    ErrorCode,
    Job,
    JobRequest,
    JobState,
    TaskState,
    Worker,
    job_finished,
)
from workers.smoke_tests.suite import PlannedTest
from workers.smoke_tests.watch import TestView, Verdict, failed, first_running_task, passed

RESOURCE_CASES = ("cancel_releases_resources", "pending_reason", "workdir_offload")
PENDING_CPU_MILLICORES = 1_000_000_000  # a million cores: more than any worker, and within int32
OFFLOAD_FILE = "offload.bin"
OFFLOAD_BYTES = 64 * 1024
# How long an idle worker to pin is looked for: an owned cluster's may be booting, and the run's own
# other tests' tasks hold the workers for their first seconds.
PIN_WAIT_S = 30.0
# Iris's availabilityStatus of a group that cannot add a slice (vm.proto says at_capacity, 0.2.227
# says at_max_slices; while its last slice boots it says cooldown, "at max_slices with in-flight capacity").
AT_CAPACITY = frozenset({"at_capacity", "at_max_slices"})
_DEVICE_KEYS = ("device-type", "accelerator-type")  # Iris's name, the embedded cluster's
_ROUTING_KEYS = ("preemptible", "region", "zone")  # Iris's routing tags, on a worker of any device
# A reason naming the CPU as what is short (Iris: "Insufficient CPU (need 1000000 cores, ...)"), not
# merely the device ("no ready cpu worker").
_CPU_SHORT = re.compile(r"insufficient cpu|\bcpu: need \d", re.IGNORECASE)
# The codes a controller refuses a job with for what it asks (Iris: failed_precondition).
_REFUSED_FOR_SIZE = frozenset({ErrorCode.FAILED_PRECONDITION, ErrorCode.INVALID_ARGUMENT, ErrorCode.RESOURCE_EXHAUSTED})

_FILL = 'echo "cancel_releases_resources: filling ${IRIS_WORKER_ID:-?}"; exec sleep "$0"'
_AGAIN = 'echo "cancel_releases_resources: the same size runs again on ${IRIS_WORKER_ID:-?}"'
_CHECKSUM = """
f=offload.bin
if [ ! -f "$f" ] && [ -n "${IRIS_WORKDIR:-}" ]; then cd "$IRIS_WORKDIR" || exit 3; fi
if [ ! -f "$f" ]; then echo "workdir_offload: no $f in $(pwd)"; exit 3; fi
got=$(sha256sum "$f" | cut -d' ' -f1); size=$(wc -c < "$f" | tr -d ' ')
if [ "$got" != "$0" ]; then echo "workdir_offload: $f has sha256 $got ($size bytes), expected $0 ($1 bytes)"; exit 4; fi
echo "workdir_offload: $f intact ($size bytes, sha256 $got)"
""".strip()


# -- workdir_offload ------------------------------------------------------------


def workdir_offload(base: JobRequest) -> PlannedTest:
    content = secrets.token_bytes(OFFLOAD_BYTES)  # run-unique: no cached blob can pass for it
    digest = hashlib.sha256(content).hexdigest()
    argv = ("sh", "-c", _CHECKSUM, digest, str(len(content)))
    request = replace(base, name="workdir_offload", argv=argv, workdir_files=((OFFLOAD_FILE, content),))
    return PlannedTest("workdir_offload", [request])


# -- pending_reason -------------------------------------------------------------


def pending_reason(base: JobRequest, limit_s: float) -> PlannedTest:
    """Launched by the watch, which judges a refusal at launch as well as a pending job."""
    request = replace(base, name="pending_reason", argv=("true",), cpu_millicores=PENDING_CPU_MILLICORES)
    return PlannedTest("pending_reason", [], watch=PendingReason(request, limit_s))


class PendingReason:
    """Pending, with a reason that names the CPU, before `limit_s` (the job timeout); or refused so."""

    def __init__(self, request: JobRequest, limit_s: float) -> None:
        self.request = request
        self.limit_s = limit_s
        self.last_reason = ""

    def step(self, view: TestView) -> Verdict | None:
        cores = PENDING_CPU_MILLICORES // 1000
        if not view.jobs():
            try:
                view.launch(self.request)
            except ControllerError as exc:
                if exc.code not in _REFUSED_FOR_SIZE:
                    raise
                if _CPU_SHORT.search(exc.details):
                    return passed(how="refused_at_launch", reason=exc.details[:300])
                return failed(f"LaunchJob of a job asking {cores} cores was refused without naming the cpu: "
                              f"{exc.code} {exc.details}")  # fmt: skip
            return None
        [job] = view.jobs()
        if job.state is JobState.PENDING:
            self.last_reason = job.pending_reason
            if _CPU_SHORT.search(job.pending_reason):
                return passed(how="pending", reason=job.pending_reason[:300], seconds=round(view.elapsed_s(), 3))
        elif job.state is not JobState.UNSPECIFIED:
            return failed(f"job {job.job_id} asking {cores} cores is {job.state}, expected pending{job.error_suffix}")
        if view.elapsed_s() >= self.limit_s:
            return failed(f"job {job.job_id} asking {cores} cores pending {view.elapsed_s():.0f}s with no reason "
                          f"naming the cpu (last reason: {self.last_reason!r})")  # fmt: skip
        return None


# -- cancel_releases_resources ----------------------------------------------------


@dataclass(frozen=True)
class Pin:
    worker: Worker
    constraints: tuple[Constraint, ...]


def cancel_releases_resources(base: JobRequest, limit_s: float) -> PlannedTest:
    """No job at launch: the watch picks its worker from the live listing, then launches."""
    return PlannedTest("cancel_releases_resources", [], watch=CancelReleases(base, limit_s))


class CancelReleases:
    def __init__(self, base: JobRequest, limit_s: float) -> None:
        self.base = base
        self.limit_s = limit_s
        self.pin: Pin | None = None
        self.killed_at = 0.0

    def step(self, view: TestView) -> Verdict | None:
        if self.pin is None:
            return self._start(view)
        jobs = view.jobs()
        if len(jobs) == 1:
            return self._fill(view, jobs[0])
        return self._again(view, jobs[1])

    def _request(self, name: str, argv: tuple[str, ...]) -> JobRequest:
        assert self.pin is not None
        cpu = self.pin.worker.cpu_millicores
        return replace(self.base, name=name, argv=argv, cpu_millicores=cpu, constraints=self.pin.constraints,
                       priority_band=PriorityBand.BATCH)  # fmt: skip

    def _start(self, view: TestView) -> Verdict | None:
        workers = view.controller.list_workers()
        try:
            status = view.controller.autoscaler()
        except ControllerError:
            status = AutoscalerStatus(groups=())  # no autoscaler's word: slice hosts only
        choice = choose_pin(workers, status)
        if isinstance(choice, str):
            # An owned cluster's workers may still be registering: look again, for a while.
            return Verdict(Outcome.SKIPPED, choice) if view.elapsed_s() >= min(PIN_WAIT_S, self.limit_s) else None
        self.pin = choice
        w = choice.worker
        view.note("cancel_worker_chosen", worker=w.worker_id, cpu_millicores=w.cpu_millicores,
                  pin=[f"{c.key}={c.value}" for c in choice.constraints])  # fmt: skip
        view.launch(self._request("cancel_releases_resources-fill", ("sh", "-c", _FILL, str(int(self.limit_s) + 60))))
        return None

    def _fill(self, view: TestView, job: Job) -> Verdict | None:
        assert self.pin is not None
        worker = self.pin.worker.worker_id
        if job_finished(job.state):
            return failed(f"the job filling worker {worker} ended {job.state} before it was terminated: {job.error}")
        task = first_running_task(view, job)
        if task is None:
            if view.elapsed_s() >= self.limit_s:
                return failed(f"the job filling worker {worker} ({self.pin.worker.cpu_millicores} millicores) never "
                              f"ran: {job.pending_reason or 'no pending reason'}")  # fmt: skip
            return None
        if task.worker_id != worker:
            return failed(f"the job pinned to worker {worker} ran on {task.worker_id}: the pin did not hold")
        view.terminate([job.job_id])
        self.killed_at = view.elapsed_s()
        view.note("cancel_fill_terminated", worker=worker, job=job.job_id)
        view.launch(self._request("cancel_releases_resources-again", ("sh", "-c", _AGAIN)))
        return None

    def _again(self, view: TestView, job: Job) -> Verdict | None:
        assert self.pin is not None
        worker, cpu = self.pin.worker.worker_id, self.pin.worker.cpu_millicores
        waited = round(view.elapsed_s() - self.killed_at, 3)
        if job.state in (JobState.RUNNING, JobState.SUCCEEDED):
            ran = [t.worker_id for t in view.tasks(job.job_id) if t.state in (TaskState.RUNNING, TaskState.SUCCEEDED)]
            if ran and ran[0] != worker:
                return failed(f"the job pinned to worker {worker} ran on {ran[0]}: the pin did not hold")
            return passed(worker=worker, cpu_millicores=cpu, waited_s=waited)
        if job_finished(job.state):
            return failed(f"the job of the same size on worker {worker} ended {job.state}: {job.error}")
        if view.elapsed_s() >= self.limit_s:
            return failed(f"worker {worker} did not take a job of the terminated one's size ({cpu} millicores) "
                          f"in {waited:.0f}s: {job.pending_reason or 'no pending reason'}", worker=worker,
                          waited_s=waited)  # fmt: skip
        return None


def choose_pin(workers: Sequence[Worker], status: AutoscalerStatus) -> Pin | str:
    """The worker to fill and the constraints that hold a job to it; else why there is none."""
    at_capacity = {
        g.name for g in status.groups
        if g.availability in AT_CAPACITY or g.availability_reason.startswith("at max_slices")
    }  # fmt: skip
    groups = [w.attributes.get("scale-group", "") for w in workers]
    pins = []
    for w in workers:
        constraints = _pin_constraints(w, groups.count(w.attributes.get("scale-group", "")) == 1, at_capacity)
        if w.healthy and w.cpu_millicores > 0 and constraints:
            pins.append(Pin(w, constraints))
    if not pins:
        listed = ", ".join(w.worker_id for w in workers[:5]) or "none"
        return (f"no worker the run can pin a job to (a slice host, or the only worker of a scale group at "
                f"capacity, with its CPU listed); workers: {listed}")  # fmt: skip
    # A CPU worker while there is one: the fill is a CPU job, which an accelerator host may not take
    # (the embedded cluster gives a slice host only jobs of its device).
    candidates = [p for p in pins if _device(p.worker) == "cpu"] or pins
    idle = [p for p in candidates if p.worker.running == 0]
    if not idle:
        busy = ", ".join(f"{p.worker.worker_id} ({p.worker.running} tasks)" for p in candidates[:5])
        return f"every worker the run can pin a job to is running tasks, so none can be filled: {busy}"
    return min(idle, key=lambda p: p.worker.worker_id)


def _pin_constraints(w: Worker, alone_in_group: bool, at_capacity: set[str]) -> tuple[Constraint, ...]:
    host = w.attributes.get("tpu-worker-id", "")
    group = w.attributes.get("scale-group", "")
    if w.slice_name and host:
        pin: tuple[Constraint, ...] = (
            Constraint("tpu-name", "eq", w.slice_name),
            Constraint("tpu-worker-id", "eq", host),
        )
    elif group and alone_in_group and group in at_capacity:
        pin = (Constraint("scale-group", "eq", group),)
    else:
        return ()
    # Iris routes demand by its tag keys only (scale-group and the slice keys are not among them):
    # a pinned job that waits must ask no group unlike the worker's for a slice it could never use.
    return pin + tuple(Constraint(k, "eq", w.attributes[k]) for k in _ROUTING_KEYS if w.attributes.get(k))


def _device(w: Worker) -> str:
    return next((w.attributes[k] for k in _DEVICE_KEYS if k in w.attributes), "cpu")
