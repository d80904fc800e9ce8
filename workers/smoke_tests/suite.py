"""The smoke suite as data: which jobs each test launches and what it expects of them.

Plain `JobRequest` values and no call, so the whole suite is built (and a bad config test
rejected) before the first job is submitted; the controller adapter turns them into its
own wire form.
- simple: one task on the accelerator group, prints and exits 0;
- concurrent: three such jobs, submitted together (they queue or scale up);
- coscheduled: replicas = hosts per slice, group_by tpu-name, each task asking for every
  chip of its host (the slice's chips per host, its variant); every rank checks its index
  and the task count (the runner checks that task i ran on host i of one slice);
- config tests: {name, argv, device, variant, count, replicas, group_by, constraints,
  expect}, as `workers.child_args.CustomTest` (built by the config reader).
Job names are short (`<test>[-<n>]`) and live under the run's job root, so the monitors
find this run's jobs and no other.
Entrypoints are POSIX sh, not Python: they run on the VM host, which has its own image.
The task's index is `IRIS_TASK_INDEX` on the embedded cluster and the last part of
`IRIS_TASK_ID` (`/<root>/<test>/<i>:<attempt>`) on Iris; the scripts accept either.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from common.deadline import Deadline
from common.errors import ConfigError
from workers.child_args import CustomTest
from workers.controller.model import JobRequest, JobState, job_state
from workers.smoke_tests.shape import Shape
from workers.smoke_tests.watch import Watch

STANDARD_TESTS = ("simple", "concurrent", "coscheduled")
CONCURRENT_JOBS = 3
# The controller's own timeouts are a backstop for a tests child that died without
# cleaning up; they fire after ours, so our timer decides the outcome.
BACKSTOP_MARGIN_S = 30.0

_DEVICE_ORDER = {"tpu": 0, "gpu": 1, "cpu": 2}

_INDEX = 'i="${IRIS_TASK_INDEX:-}"; if [ -z "$i" ]; then t="${IRIS_TASK_ID%%:*}"; i="${t##*/}"; fi'
_SIMPLE = _INDEX + '; echo "simple task $i on $IRIS_WORKER_ID ok"'
_CONCURRENT = _INDEX + '; echo "concurrent job task $i on $IRIS_WORKER_ID ok"'
# Each rank checks what a multi-host program relies on: its index and the task count.
_COSCHEDULED = (
    _INDEX
    + """
n="$IRIS_NUM_TASKS"; w="$IRIS_WORKER_ID"
case "$i" in ''|*[!0-9]*) echo "cosched task: no task index (IRIS_TASK_INDEX/IRIS_TASK_ID)"; exit 2;; esac
if [ "$n" != "{hosts}" ]; then echo "cosched task $i/$n on $w: expected {hosts} tasks"; exit 3; fi
if [ "$i" -ge "$n" ]; then echo "cosched task $i/$n on $w: index out of range"; exit 4; fi
echo "cosched task $i/$n on $w ok"
"""
)


@dataclass(frozen=True)
class Accelerator:
    device: str  # cpu | gpu | tpu
    variant: str
    hosts_per_slice: int
    chips_per_host: int = 0  # 0 = not known: the request names no count


@dataclass
class PlannedTest:
    """One test: the jobs it launches, what it expects of them, and how it is doing."""

    name: str
    requests: list[JobRequest]
    expect: JobState = JobState.SUCCEEDED
    check_placement: bool = False
    # Every task must have run on a worker that meets its job's constraints.
    placement: bool = False
    # The job's task submits a child job (JobRequest.child) that must succeed; and, where the
    # backend inherits the constraint's key, run where the parent's constraints hold.
    child_inherits: bool = False
    skip: str = ""  # set: the cluster cannot serve this test; reported as skipped with this reason
    # Set: the test acts on its jobs while they run and decides its own verdict (watch.py).
    watch: Watch | None = None
    job_ids: list[str] = field(default_factory=list)
    error: str = ""
    started: float = 0.0
    ends: Deadline | None = None
    done: bool = False
    last_call_error: str = ""  # a watched test's last failed controller call, named if it times out


def standard_tests(names: Sequence[str], acc: Accelerator, job_timeout_s: float) -> list[PlannedTest]:
    on_acc = JobRequest("", (), device=acc.device, variant=acc.variant, timeout_s=job_timeout_s + BACKSTOP_MARGIN_S)
    runs = []
    for name in names:
        if name == "simple":
            runs.append(PlannedTest(name, [replace(on_acc, name=name, argv=("sh", "-c", _SIMPLE))]))
        elif name == "concurrent":
            requests = [
                replace(on_acc, name=f"{name}-{i}", argv=("sh", "-c", _CONCURRENT)) for i in range(CONCURRENT_JOBS)
            ]
            runs.append(PlannedTest(name, requests))
        elif name == "coscheduled":
            argv = ("sh", "-c", _COSCHEDULED.replace("{hosts}", str(acc.hosts_per_slice)))
            request = replace(on_acc, name=name, argv=argv, replicas=acc.hosts_per_slice, group_by="tpu-name",
                              count=acc.chips_per_host)  # fmt: skip
            runs.append(PlannedTest(name, [request], check_placement=True))
        else:
            raise ConfigError(f"standard: unknown test {name!r}; known: {', '.join(STANDARD_TESTS)}")
    return runs


def custom_test(spec: CustomTest, job_timeout_s: float) -> PlannedTest:
    """A `[[tests]]` entry as one job; the config reader has checked every field."""
    request = replace(spec.job, timeout_s=job_timeout_s + BACKSTOP_MARGIN_S)
    return PlannedTest(spec.name, [request], expect=job_state(spec.expect))


def pick_accelerator(shape: Shape, hosts_override: int | None, accelerator: str = "") -> Accelerator:
    """The group the standard tests run on: TPU first, then GPU, then CPU (listing order within a kind).

    `accelerator` (`tpu` or `tpu:v5litepod-16`) narrows the choice to that device and variant.
    """
    groups = sorted(shape.offers, key=lambda g: _DEVICE_ORDER.get(g.device, len(_DEVICE_ORDER)))
    device, _, variant = accelerator.partition(":")
    if device:
        groups = [g for g in groups if g.device == device and variant in ("", g.variant)]
        if not groups:
            offered = sorted({f"{g.device}:{g.variant}" if g.variant else g.device for g in shape.offers})
            raise ConfigError(f"accelerator {accelerator!r}: no scale group offers it (offered: {', '.join(offered)})")
    if not groups:
        raise ConfigError("the controller reports no scale groups and no workers")
    g = groups[0]
    chips = g.chips_per_host if g.device != "cpu" else 0
    return Accelerator(g.device, g.variant, hosts_override or g.hosts_per_slice or 1, chips)
