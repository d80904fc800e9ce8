"""The resource cases' decisions without a cluster: which worker cancel_releases_resources pins (and
how), and pending_reason's verdicts on a job pending for the wrong reason or refused without one."""

from collections.abc import Sequence

from common.jsonshape import Json
from common.outcome import Outcome
from workers.controller.model import (
    AutoscalerStatus,
    Constraint,
    ControllerError,
    ErrorCode,
    GroupStatus,
    Job,
    JobRequest,
    JobState,
    Task,
    Worker,
)
from workers.smoke_tests.resource_cases import PendingReason, choose_pin


def _worker(name: str, group: str, cpu: int = 2000, running: int = 0, **more: str) -> Worker:
    attributes = {"scale-group": group, "device-type": more.pop("device", "cpu"), **more}
    return Worker(name, True, "", attributes, cpu_millicores=cpu, running=running)


def _groups(**availability: str) -> AutoscalerStatus:
    return AutoscalerStatus(tuple(GroupStatus(n, "cpu", "", 1, availability=a) for n, a in availability.items()))


def test_a_slice_host_is_pinned_by_its_slice_and_index_and_cpu_workers_come_first() -> None:
    tpu = _worker("tpu-0", "tpu", 8000, device="tpu", **{"tpu-name": "s1", "tpu-worker-id": "2"})
    pin = choose_pin([tpu], _groups())
    assert not isinstance(pin, str)
    assert pin.constraints == (Constraint("tpu-name", "eq", "s1"), Constraint("tpu-worker-id", "eq", "2"))
    cpu = _worker("cpu-0", "cpu", **{"tpu-name": "c0", "tpu-worker-id": "0"})  # the embedded cluster's
    chosen = choose_pin([tpu, cpu], _groups())
    assert not isinstance(chosen, str) and chosen.worker.worker_id == "cpu-0"


def test_an_iris_cpu_worker_is_pinned_only_as_the_one_worker_of_a_group_at_capacity() -> None:
    spot, cpu = _worker("w-spot", "cpu_spot"), _worker("w-cpu", "cpu")
    assert isinstance(choose_pin([spot, cpu], _groups(cpu_spot="available", cpu="available")), str)
    pin = choose_pin([spot, cpu], _groups(cpu_spot="at_max_slices", cpu="available"))
    assert not isinstance(pin, str) and pin.constraints == (Constraint("scale-group", "eq", "cpu_spot"),)
    # The routing tags it carries hold the job's demand, if it waits, to groups like it.
    spot = _worker("w-spot", "cpu_spot", preemptible="true", pool="b")
    pin = choose_pin([spot, cpu], _groups(cpu_spot="at_max_slices"))
    assert not isinstance(pin, str) and pin.constraints[1:] == (Constraint("preemptible", "eq", "true"),)
    twins = [spot, _worker("w-spot-2", "cpu_spot")]
    assert "no worker the run can pin" in str(choose_pin(twins, _groups(cpu_spot="at_max_slices")))


def test_only_an_idle_worker_is_filled_and_every_one_busy_is_said() -> None:
    busy = _worker("a", "g1", running=1, **{"tpu-name": "a", "tpu-worker-id": "0"})
    idle = _worker("b", "g2", **{"tpu-name": "b", "tpu-worker-id": "0"})
    chosen = choose_pin([busy, idle], _groups())
    assert not isinstance(chosen, str) and chosen.worker.worker_id == "b"
    why = choose_pin([busy], _groups())
    assert isinstance(why, str) and "running tasks" in why and "a (1 tasks)" in why
    # A busy CPU worker is waited for rather than an idle accelerator host taken: the fill is a CPU job.
    cpu_busy = _worker("c", "cpu", running=2, **{"tpu-name": "c", "tpu-worker-id": "0"})
    tpu_idle = _worker("t", "tpu", 8000, device="tpu", **{"tpu-name": "t", "tpu-worker-id": "0"})
    assert "c (2 tasks)" in str(choose_pin([cpu_busy, tpu_idle], _groups()))


class _View:
    """A watch's TestView over one job whose state the test sets, or whose launch is refused."""

    controller = None  # type: ignore[assignment]

    def __init__(self, refusal: ControllerError | None = None) -> None:
        self.refusal = refusal
        self.job: Job | None = None
        self.elapsed = 0.0

    def jobs(self) -> list[Job]:
        return [self.job] if self.job is not None else []

    def tasks(self, job_id: str) -> list[Task]:
        return []

    def launch(self, request: JobRequest) -> str:
        if self.refusal is not None:
            raise self.refusal
        self.job = Job("j1", request.name, JobState.PENDING)
        return "j1"

    def terminate(self, job_ids: Sequence[str]) -> None:
        pass

    def elapsed_s(self) -> float:
        return self.elapsed

    def note(self, event: str, **fields: Json) -> None:
        pass


def _request() -> JobRequest:
    return JobRequest("pending_reason", ("true",), cpu_millicores=10**9)


def test_pending_without_a_reason_naming_the_cpu_fails_at_the_limit_quoting_the_last_reason() -> None:
    watch, view = PendingReason(_request(), limit_s=10), _View()
    assert watch.step(view) is None and view.job is not None
    view.job = Job("j1", "pending_reason", JobState.PENDING, pending_reason="no ready cpu worker")
    assert watch.step(view) is None
    view.elapsed = 10
    verdict = watch.step(view)
    assert verdict is not None and verdict.outcome is Outcome.FAILED
    assert "with no reason naming the cpu (last reason: 'no ready cpu worker')" in verdict.reason


def test_pending_for_the_cpu_passes_and_running_fails() -> None:
    watch, view = PendingReason(_request(), limit_s=10), _View()
    watch.step(view)
    view.job = Job("j1", "p", JobState.PENDING, pending_reason="Insufficient CPU (need 1000000 cores, available 2)")
    verdict = watch.step(view)
    assert verdict is not None and verdict.outcome is Outcome.PASSED and verdict.details["how"] == "pending"
    view.job = Job("j1", "p", JobState.RUNNING)
    verdict = PendingReason(_request(), 10).step(view)
    assert verdict is not None and verdict.outcome is Outcome.FAILED and "expected pending" in verdict.reason


def test_a_refusal_at_launch_passes_only_when_it_names_the_cpu() -> None:
    named = ControllerError(ErrorCode.FAILED_PRECONDITION, "LaunchJob", "per-VM capacity: cpu (cpu: need 1000, ...")
    verdict = PendingReason(_request(), 10).step(_View(named))
    assert verdict is not None and verdict.outcome is Outcome.PASSED and verdict.details["how"] == "refused_at_launch"
    vague = ControllerError(ErrorCode.FAILED_PRECONDITION, "LaunchJob", "no")
    verdict = PendingReason(_request(), 10).step(_View(vague))
    assert verdict is not None and verdict.outcome is Outcome.FAILED and "without naming the cpu" in verdict.reason
