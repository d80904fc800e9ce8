"""The cases of Iris's own smoke suite that act on a job while it runs (`watch.py`), planned here.

Each is safe on a standing cluster: its jobs are named under the run's root (so the sweep
ends them, and a second run never meets the first's names) and touch no one else's.
- many_tasks: one job of `[suite] many_tasks` replicas (Iris's suite runs 50), each asking no
  CPU (`cpu=0`, as Iris's suite does); every task must succeed; the seconds until every task had
  started (`all_started_s`) are recorded.
- exec_in_container, profile_task: a call into a running task (`task_calls.py`).
- log_levels, named_ports, endpoint_registration: what the cluster gives a task (service_cases.py).
- cancel_releases_resources, pending_reason, workdir_offload: `resource_cases.py`.
"""

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from workers.controller.model import (
    JobRequest,
    JobState,
    TaskState,
    job_finished,
    task_finished,
)
from workers.smoke_tests import resource_cases, task_calls
from workers.smoke_tests.service_cases import SERVICE_CASES, service_case
from workers.smoke_tests.suite import BACKSTOP_MARGIN_S, PlannedTest
from workers.smoke_tests.watch import TestView, Verdict, failed, passed

IRIS_CASES = ("many_tasks", "exec_in_container", "profile_task", *SERVICE_CASES, *resource_cases.RESOURCE_CASES)

_ECHO = 'echo "$0 task ${IRIS_TASK_ID:-${IRIS_TASK_INDEX:-?}} on ${IRIS_WORKER_ID:-?} ok"'


@dataclass(frozen=True)
class CaseSettings:
    many_tasks: int
    endpoint_hold_s: float


def iris_cases(names: Sequence[str], settings: CaseSettings, job_timeout_s: float) -> list[PlannedTest]:
    cpu = JobRequest("", (), device="cpu", timeout_s=job_timeout_s + BACKSTOP_MARGIN_S)
    plan: dict[str, Callable[[], PlannedTest]] = {
        "many_tasks": lambda: _many_tasks(settings.many_tasks, cpu),
        "exec_in_container": lambda: task_calls.exec_in_container(cpu, job_timeout_s),
        "profile_task": lambda: task_calls.profile_task(cpu, job_timeout_s),
        **{name: functools.partial(service_case, name, cpu, settings.endpoint_hold_s) for name in SERVICE_CASES},
        "cancel_releases_resources": lambda: resource_cases.cancel_releases_resources(cpu, job_timeout_s),
        "pending_reason": lambda: resource_cases.pending_reason(cpu, job_timeout_s),
        "workdir_offload": lambda: resource_cases.workdir_offload(cpu),
    }
    return [plan[name]() for name in names]


def _many_tasks(replicas: int, base: JobRequest) -> PlannedTest:
    request = replace(base, name="many_tasks", argv=("sh", "-c", _ECHO, "many_tasks"), replicas=replicas,
                      cpu_millicores=0)  # fmt: skip
    return PlannedTest("many_tasks", [request], watch=ManyTasks(replicas))


class ManyTasks:
    """Every one of `replicas` tasks succeeds; when all had started is recorded."""

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas
        self.all_started_s: float | None = None

    def step(self, view: TestView) -> Verdict | None:
        [job] = view.jobs()
        started = sum(n for s, n in job.task_state_counts.items() if _started(s))
        if self.all_started_s is None and started >= self.replicas:
            self.all_started_s = round(view.elapsed_s(), 3)
            view.note("many_tasks_all_started", tasks=self.replicas, seconds=self.all_started_s)
        if not job_finished(job.state):
            return None
        tasks = view.tasks(job.job_id)
        succeeded = sum(t.state is TaskState.SUCCEEDED for t in tasks)
        details = {"tasks": self.replicas, "succeeded": succeeded, "all_started_s": self.all_started_s}
        if job.state is not JobState.SUCCEEDED or succeeded != self.replicas or len(tasks) != self.replicas:
            return failed(f"job {job.job_id} ended {job.state} with {succeeded} of {self.replicas} tasks "
                          f"succeeded ({len(tasks)} listed){job.error_suffix}", **details)  # fmt: skip
        return passed(**details)


def _started(state: str) -> bool:
    try:
        parsed = TaskState(state)
    except ValueError:
        return False
    return parsed is TaskState.RUNNING or task_finished(parsed)
