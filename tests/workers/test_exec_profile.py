"""exec_in_container and profile_task on the embedded cluster: its tasks are plain processes, so both are
skipped with the adapter's reason as soon as their task runs, and their jobs are terminated then: a
skipped test holds nothing for long. (Against a real Iris: tests/iris/test_iris_exec_profile.py.)"""

import uuid
from pathlib import Path

from common.messages import Kind
from tests.helpers.forked import run_to_end
from tests.workers.conftest import embedded
from workers.child_args import SuiteArgs
from workers.controller.grpc_api import NO_CONTAINER, NO_PROFILER

JOB_TIMEOUT_S = 60.0
SKIPPED_WITHIN_S = 10.0  # far below the job timeout the tasks would otherwise sleep or spin for


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
