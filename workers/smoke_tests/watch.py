"""Tests that act on their jobs while they run, not only judge them when they end.

Most tests are plain data (`suite.PlannedTest`): jobs launched together, judged by their final
states. Iris's own cases need more: exec in a task while it runs, profile it, terminate a job
and see its resources come back, read a pending job's reason, fetch a finished task's logs at a
level. Such a test carries a `Watch`: the runner calls its `step` at every poll of the run's jobs,
with a `TestView` of the test, until it returns a `Verdict`; the runner then terminates what is
left of the test's jobs and reports the verdict. The job timeout still bounds it: a watch that
never decides times out like any test.

A controller call the cluster does not implement (`unimplemented`, with the adapter's reason)
is the test's skip, said at run time by the cluster; a refused credential is an error; any
other failed call is retried at the next poll (a tunnel's blip), and the last one is named if
the test times out.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from common.jsonshape import Json, JsonObject
from common.outcome import Outcome
from workers.controller.api import Controller
from workers.controller.model import Job, JobRequest, JobState, Task, TaskState, job_finished


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str = ""
    details: JsonObject = field(default_factory=dict)  # measurements, into the test's RESULT


def passed(**details: Json) -> Verdict:
    return Verdict(Outcome.PASSED, "", details)


def failed(reason: str, **details: Json) -> Verdict:
    return Verdict(Outcome.FAILED, reason, details)


class TestView(Protocol):
    """What a watch sees of its test and may do: its jobs (launch order), launch one more, terminate."""

    controller: Controller

    def jobs(self) -> list[Job]:
        """The test's jobs as the latest listing saw them, in launch order (UNSPECIFIED: not listed yet)."""
        ...

    def tasks(self, job_id: str) -> list[Task]:
        """The job's tasks by index (a failed call raises ControllerError)."""
        ...

    def launch(self, request: JobRequest) -> str:
        """Launch another job of the test (swept with the rest); its job id."""
        ...

    def terminate(self, job_ids: Sequence[str]) -> None: ...

    def elapsed_s(self) -> float:
        """Seconds since the test's first job was launched."""
        ...

    def note(self, event: str, **fields: Json) -> None:
        """A log event of the test (`event` snake_case, the test's name added)."""
        ...


class Watch(Protocol):
    def step(self, view: TestView) -> Verdict | None:
        """Look at the test and act; a verdict ends it, None waits for the next poll."""
        ...


def running_task(view: TestView, acting: str) -> tuple[Job, Task] | Verdict | None:
    """The test's one job and its running task; a failure if the job ended before the watch could
    do `acting`; None while no task runs yet."""
    [job] = view.jobs()
    if job_finished(job.state):
        return failed(f"job {job.job_id} ended {job.state} before {acting}{job.error_suffix}")
    task = first_running_task(view, job)
    return (job, task) if task is not None else None


def first_running_task(view: TestView, job: Job) -> Task | None:
    """A running task of `job`, once it has one."""
    if job.state is not JobState.RUNNING:
        return None
    return next((t for t in view.tasks(job.job_id) if t.state is TaskState.RUNNING), None)
