"""Placement decisions on hand-made workers, with no process and no clock."""

from iris_smoke_api.v1.states import ConstraintOp
from local_cluster.config import default_config_text, parse_config
from local_cluster.fit import infeasible_reason
from local_cluster.model import Constraint, Device, Job, JobSpec, Task, Worker
from local_cluster.scheduler import schedule
from local_cluster.states import AcceleratorType

TPU = Device(AcceleratorType.TPU, "v5litepod-16", 4)


def tpu_host(slice_id: str, index: int, region: str = "local") -> Worker:
    attributes = {"tpu-name": slice_id, "tpu-worker-id": str(index), "region": region}
    return Worker(f"{slice_id}-w{index}", slice_id, "tpu", index, TPU, attributes, 1, 0.0, schedulable=True)


def job(spec: JobSpec, job_id: str = "j") -> Job:
    return Job(job_id, spec, 0.0, [Task(job_id, i) for i in range(spec.replicas)])


def cosched(replicas: int = 4, **kw: object) -> JobSpec:
    return JobSpec("j", ("true",), TPU, replicas=replicas, group_by="tpu-name", **kw)  # type: ignore[arg-type]


def test_coscheduled_tasks_go_to_one_slice_in_host_order() -> None:
    """Hosts listed out of order and across slices: task i lands on host i of a single slice."""
    workers = [tpu_host("s-1", i) for i in (3, 1, 0, 2)] + [tpu_host("s-0", i) for i in (0, 1, 2)]
    result = schedule([job(cosched())], workers)
    assert [(a.task_index, a.worker_id) for a in result.assignments] == [(i, f"s-1-w{i}") for i in range(4)]
    assert result.blocked == []


def test_coscheduled_job_is_placed_whole_or_not_at_all() -> None:
    workers = [tpu_host("s-0", i) for i in range(4)]
    workers[2].active_tasks[("other", 0)] = 4
    result = schedule([job(cosched())], workers)
    assert result.assignments == []
    (blocked,) = result.blocked
    assert blocked.task_indices == (0, 1, 2, 3) and "no tpu-name group has 4 free" in blocked.reason


def test_constraints_are_honoured_and_explained() -> None:
    workers = [tpu_host("s-0", i, region="us-east1") for i in range(4)]
    spec = cosched(constraints=(Constraint("region", ConstraintOp.EQ, "eu-west4"),))
    result = schedule([job(spec)], workers)
    assert result.assignments == []
    assert "matches constraints region=eu-west4" in result.blocked[0].reason
    spec = cosched(constraints=(Constraint("region", ConstraintOp.NE, "eu-west4"),))
    assert len(schedule([job(spec)], workers).assignments) == 4


def test_independent_tasks_fill_free_capacity_first_fit() -> None:
    cpu = Device(AcceleratorType.CPU, "", 2)  # two task slots
    workers = [Worker(f"c-{i}-w0", f"c-{i}", "cpu", 0, cpu, {}, 1, 0.0, schedulable=True) for i in range(2)]
    spec = JobSpec("j", ("true",), Device(), replicas=5)
    result = schedule([job(spec)], workers)
    assert [a.worker_id for a in result.assignments] == ["c-0-w0", "c-0-w0", "c-1-w0", "c-1-w0"]
    assert result.blocked[0].task_indices == (4,) and "busy" in result.blocked[0].reason


def test_unready_workers_get_nothing() -> None:
    workers = [tpu_host("s-0", i) for i in range(4)]
    workers[0].schedulable = False
    result = schedule([job(cosched())], workers)
    assert result.assignments == []


def test_infeasible_jobs_are_named_with_a_reason_per_group() -> None:
    config = parse_config(default_config_text(), "default")
    assert infeasible_reason(cosched(), config) is None
    reason = infeasible_reason(cosched(replicas=8), config)
    assert reason is not None and "tpu: 4 hosts per slice, the coscheduled job needs 8" in reason
    assert "cpu: offers cpu, job needs tpu" in reason
