"""Watched tests (workers/smoke_tests/watch.py) in the tests child, on the embedded cluster."""

from pathlib import Path

from common.messages import Kind
from tests.helpers.forked import run_to_end
from tests.workers.conftest import embedded, list_jobs
from workers.child_args import SuiteArgs


def test_many_tasks_passes_with_every_task_succeeded_and_records_when_all_started(cluster: str, tmp_path: Path) -> None:
    args = SuiteArgs(embedded(cluster, "many"), 30, ("many_tasks",), many_tasks=12, poll_interval_s=0.1)
    child = run_to_end("workers.smoke_tests:main", args, tmp_path / "run", 40, name="tests")
    (result,) = child.of(Kind.RESULT)
    assert (result["test"], result["outcome"], result["error"]) == ("many_tasks", "passed", "")
    details = result["details"]
    assert (details["tasks"], details["succeeded"]) == (12, 12)
    assert 0 < details["all_started_s"] <= result["duration_s"]
    [started] = child.events("many_tasks_all_started")
    assert started["tasks"] == 12


def test_a_watched_test_that_never_decides_times_out_and_its_job_is_terminated(cluster: str, tmp_path: Path) -> None:
    """The job timeout bounds a watch like any test: the verdict never came, the job is KILLED."""
    args = SuiteArgs(embedded(cluster, "slow"), 0.3, ("many_tasks",), many_tasks=400, poll_interval_s=0.1)
    child = run_to_end("workers.smoke_tests:main", args, tmp_path / "run", 30, name="tests")
    (result,) = child.of(Kind.RESULT)
    assert result["outcome"] == "timeout" and "job_timeout_s=0.3" in result["error"], result
    assert [j["state"] for j in list_jobs(cluster, tmp_path / "probe", "slow")] == ["killed"]
