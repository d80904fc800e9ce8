"""The placement checks (coscheduled, and the parity tests that check where tasks ran) never
pass on what they did not see: a ListTasks that failed, or fewer tasks than the job's replicas.

Decision logic only: the runner is given a scripted controller and a context that records
what it sends, and judges one finished test."""

import types
from typing import Any

import pytest

from common.deadline import Deadline
from common.messages import Kind, Message
from tests.workers.conftest import embedded
from workers.child_args import SuiteArgs
from workers.controller.model import (
    Constraint,
    ControllerError,
    ErrorCode,
    Job,
    JobRequest,
    JobState,
    Task,
    TaskState,
    Worker,
)
from workers.runtime import StopRequest
from workers.smoke_tests.runner import SmokeTests
from workers.smoke_tests.suite import PlannedTest

JOB = "t-placed"
SLICE = {
    f"s-w{i}": Worker(f"s-w{i}", True, "", {"tpu-name": "s", "tpu-worker-id": str(i), "region": "r"}) for i in range(4)
}


class ScriptedController:
    inherited_constraint_keys = None

    def __init__(self, tasks: list[Task] | ControllerError) -> None:
        self.tasks = tasks

    def list_tasks(self, job_id: str) -> list[Task]:
        if isinstance(self.tasks, ControllerError):
            raise self.tasks
        return list(self.tasks)

    def list_workers(self) -> list[Worker]:
        return list(SLICE.values())


class Recorder:
    """Stands for the child's logger and its message channel."""

    def __init__(self) -> None:
        self.sent: list[tuple[Kind, dict[str, Any]]] = []
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.sent.append((message.kind, message.body))
        self.messages.append(message)

    def __getattr__(self, _level: str) -> Any:
        return lambda *_args, **_fields: None


def _judge(run: PlannedTest, tasks: list[Task] | ControllerError) -> dict[str, Any]:
    recorder = Recorder()
    args = SuiteArgs(embedded("unix:/nowhere", "t"), 60, ())
    ctx = types.SimpleNamespace(args=args, deadline=Deadline.after(60), log=recorder, channel=recorder,
                                stop=StopRequest())  # fmt: skip
    tests = SmokeTests(ctx, ScriptedController(tasks), [run], 60)  # type: ignore[arg-type]
    run.job_ids = [JOB]
    tests.jobs[JOB] = Job(JOB, JOB, JobState.SUCCEEDED)
    tests.judge(run, [JobState.SUCCEEDED])
    (result,) = [body for kind, body in recorder.sent if kind is Kind.RESULT]
    return result


def _tasks(count: int) -> list[Task]:
    return [Task(f"{JOB}/{i}", i, TaskState.SUCCEEDED, worker_id=f"s-w{i}") for i in range(count)]


def _coscheduled() -> PlannedTest:
    request = JobRequest("placed", (), device="tpu", replicas=4, group_by="tpu-name")
    return PlannedTest("coscheduled", [request], check_placement=True)


def _pinned() -> PlannedTest:
    request = JobRequest("placed", (), replicas=4, constraints=(Constraint("region", "eq", "r"),))
    return PlannedTest("region_constrained", [request], placement=True)


def test_the_checks_pass_when_every_replica_ran_where_it_should() -> None:
    assert _judge(_coscheduled(), _tasks(4))["outcome"] == "passed"
    assert _judge(_pinned(), _tasks(4))["outcome"] == "passed"


@pytest.mark.parametrize("planned", [_coscheduled, _pinned], ids=["coscheduled", "constrained"])
def test_a_list_tasks_error_fails_the_check_naming_it(planned: Any) -> None:
    result = _judge(planned(), ControllerError(ErrorCode.UNAVAILABLE, "ListTasks", "connection refused"))
    assert result["outcome"] == "failed"
    assert f"ListTasks of {JOB} failed: unavailable connection refused" in result["error"]


@pytest.mark.parametrize("planned", [_coscheduled, _pinned], ids=["coscheduled", "constrained"])
def test_fewer_tasks_than_replicas_fail_the_check(planned: Any) -> None:
    result = _judge(planned(), _tasks(2))
    assert result["outcome"] == "failed"
    assert f"ListTasks of {JOB} listed 2 tasks, expected 4" in result["error"]
