"""exec_in_container and profile_task on the embedded cluster: its tasks are plain processes, so both are
skipped with the adapter's reason as soon as their task runs, and their jobs are terminated then: a
skipped test holds nothing for long. And what the Iris adapter sends and reads for them (a fake
client's canned replies; against a real Iris: tests/iris/test_iris_exec_profile.py)."""

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest

from common.controller_target import ApiKind, ControllerTarget
from common.deadline import Deadline
from common.messages import Kind
from tests.helpers.forked import run_to_end
from tests.workers.conftest import embedded
from tests.workers.test_connect_api_shapes import FakeClient
from workers.child_args import TESTS_CALL_LIMIT_S, SuiteArgs
from workers.controller.connect_api import NO_PROFILER as NO_IRIS_PROFILER
from workers.controller.connect_api import IrisController
from workers.controller.grpc_api import NO_CONTAINER, NO_PROFILER
from workers.controller.model import ApiMismatch, ControllerError, ErrorCode, ExecResult, Profile, ProfileFormat
from workers.smoke_tests.task_calls import collapsed_samples

JOB_TIMEOUT_S = 60.0
SKIPPED_WITHIN_S = 10.0  # far below the job timeout the tasks would otherwise sleep or spin for
JOB = "/xp/exec_in_container"
EXEC = "iris.cluster.ControllerService/ExecInContainer"
PROFILE = "iris.cluster.ControllerService/ProfileTask"


def test_both_are_skipped_with_the_reason_and_their_jobs_terminated_at_once(cluster: str, tmp_path: Path) -> None:
    args = SuiteArgs(embedded(cluster, f"x{uuid.uuid4().hex[:8]}"), JOB_TIMEOUT_S,
                     ("exec_in_container", "profile_task"), poll_interval_s=0.1)  # fmt: skip
    child = run_to_end("workers.smoke_tests:main", args, tmp_path / "run", JOB_TIMEOUT_S + 10, name="tests")
    assert child.exit_code == 0
    results = {r["test"]: r for r in child.of(Kind.RESULT)}
    assert results["exec_in_container"]["error"] == f"ExecInContainer: {NO_CONTAINER}", results
    assert results["profile_task"]["error"] == f"ProfileTask: {NO_PROFILER}", results
    for result in results.values():
        assert result["outcome"] == "skipped" and result["duration_s"] < SKIPPED_WITHIN_S, result
        (job,) = result["jobs"]
        assert job["state"] == "killed", job


class Recording(FakeClient):
    """The canned replies, and each call's body and time limit as the adapter sent them."""

    def __init__(self, replies: dict[str, dict[str, Any]]) -> None:
        super().__init__(replies)
        self.sent: list[tuple[str, dict[str, Any], float]] = []

    def call(self, method: str, body: dict[str, Any], timeout_s: float, max_bytes: int = 0) -> dict[str, Any]:
        self.sent.append((method, body, timeout_s))
        return super().call(method, body, timeout_s, max_bytes)


def _iris(replies: dict[str, dict[str, Any]]) -> tuple[IrisController, Recording]:
    client = Recording(replies)
    target = ControllerTarget(ApiKind.IRIS, "http://controller.invalid:1", "xp")
    return IrisController(client, target, Deadline.after(30), TESTS_CALL_LIMIT_S), client


def test_iris_exec_names_the_task_and_fits_its_command_limit_in_the_call() -> None:
    iris, client = _iris({EXEC: {"stdout": "tok\n", "exitCode": 3, "stderr": "e"}})
    assert iris.exec_in_container(JOB, 0, ("echo", "tok"), 2.0) == ExecResult(3, "tok\n", "e")
    [(_, body, timeout_s)] = client.sent
    assert body == {"taskId": f"{JOB}/0", "command": ["echo", "tok"], "timeoutSeconds": 2}
    assert timeout_s <= TESTS_CALL_LIMIT_S  # the command's 2 s end a second before the call's 3 s
    iris, client = _iris({EXEC: {}})
    assert iris.exec_in_container(JOB, 1, ("true",), 30.0) == ExecResult(0, "", "")  # absent = proto3 default
    assert client.sent[-1][1] == {"taskId": f"{JOB}/1", "command": ["true"], "timeoutSeconds": 2}


def test_iris_profile_decodes_the_bytes_and_calls_iris_stand_in_unimplemented() -> None:
    stacks = b"<module> (<string>:10);smoke_busy (<string>:6) 42\n"
    iris, client = _iris({PROFILE: {"profileData": base64.b64encode(stacks).decode()}})
    assert iris.profile_task(JOB, 0, 1.0) == Profile(stacks, ProfileFormat.RAW)
    assert collapsed_samples(stacks) == 42
    [(_, body, _)] = client.sent
    assert body == {"target": f"{JOB}/0", "durationSeconds": 1,
                    "profileType": {"cpu": {"format": "RAW", "rateHz": 100, "native": False}}}  # fmt: skip
    stand_in = base64.b64encode(b"py-spy unavailable in local mode\n").decode()
    iris, _ = _iris({PROFILE: {"profileData": stand_in}})
    with pytest.raises(ControllerError) as refused:
        iris.profile_task(JOB, 0, 1.0)
    assert refused.value.code is ErrorCode.UNIMPLEMENTED and refused.value.details == NO_IRIS_PROFILER
    iris, _ = _iris({PROFILE: {"profileData": "not base64!"}})
    with pytest.raises(ApiMismatch, match="profileData is a string, expected base64 bytes"):
        iris.profile_task(JOB, 0, 1.0)


def test_iris_never_execs_in_or_profiles_a_job_outside_the_run() -> None:
    iris, client = _iris({})
    for act in (
        lambda: iris.exec_in_container("/someone/else", 0, ("true",), 1),
        lambda: iris.profile_task("/x/y", 0, 1),
    ):
        with pytest.raises(ControllerError) as refused:
            act()
        assert refused.value.code is ErrorCode.PERMISSION_DENIED
    assert client.sent == []
