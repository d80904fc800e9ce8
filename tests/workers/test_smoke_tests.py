"""The tests child: the standard suite, a failing config test, and a stop in the middle."""

from pathlib import Path
from typing import Any

from common.messages import Kind
from tests.helpers.forked import forked_child, run_to_end
from tests.helpers.waiting import wait_for
from tests.workers.conftest import embedded, list_jobs
from tests.workers.probe_args import as_custom_test
from workers.child_args import SuiteArgs

STOP_WITHIN_S = 1.5


def _args(address: str, root: str, standard: tuple[str, ...] = (), **more: Any) -> SuiteArgs:
    custom = tuple(as_custom_test(t) for t in more.pop("custom", ()))
    timeout_s = more.pop("job_timeout_s", 30)
    return SuiteArgs(embedded(address, root), timeout_s, standard, custom=custom, poll_interval_s=0.1, **more)


def test_standard_suite_passes_on_the_default_local_cluster(default_cluster: str, tmp_path: Path) -> None:
    """simple, concurrent and coscheduled all pass; the coscheduled ranks ran on hosts 0..3 of one slice."""
    args = _args(default_cluster, "std", standard=("simple", "concurrent", "coscheduled"))
    child = run_to_end("workers.smoke_tests:main", args, tmp_path / "run", 40, name="tests")
    assert child.exit_code == 0
    results = {r["test"]: r for r in child.of(Kind.RESULT)}
    assert {name: r["outcome"] for name, r in results.items()} == {
        "simple": "passed", "concurrent": "passed", "coscheduled": "passed",
    }, results  # fmt: skip
    assert [j["name"] for j in results["concurrent"]["jobs"]] == [f"std-concurrent-{i}" for i in range(3)]
    assert all(j["state"] == "succeeded" for r in results.values() for j in r["jobs"])
    (cosched,) = results["coscheduled"]["jobs"]
    workers = [t["worker_id"] for t in sorted(cosched["tasks"], key=lambda t: t["task_index"])]
    assert len(set(workers)) == 4
    slice_id = workers[0].rsplit("-w", 1)[0]
    assert workers == [f"{slice_id}-w{i}" for i in range(4)]
    assert child.events("job_launched") and child.of(Kind.READY)[0]["jobs"]


def test_config_test_whose_argv_exits_1_fails_with_its_log_tail(cluster: str, tmp_path: Path) -> None:
    """A failing entrypoint: outcome failed, the job's exit code, and its output in log_tail."""
    tests = [
        {"name": "boom", "argv": ["sh", "-c", "echo about to fail; exit 1"], "device": "cpu"},
        {"name": "meant-to-fail", "argv": ["sh", "-c", "exit 3"], "device": "cpu", "expect": "failed"},
    ]
    args = _args(cluster, "cfg", custom=tests)
    child = run_to_end("workers.smoke_tests:main", args, tmp_path / "run", 20, name="tests")
    results = {r["test"]: r for r in child.of(Kind.RESULT)}
    boom = results["boom"]
    assert boom["outcome"] == "failed"
    assert "ended failed, expected succeeded" in boom["error"]
    assert boom["jobs"][0]["exit_code"] == 1
    (tail,) = boom["log_tail"]
    assert tail["task"] == 0 and any("about to fail" in line for line in tail["lines"])
    assert results["meant-to-fail"]["outcome"] == "passed"


def test_stop_mid_test_terminates_its_jobs_and_reports_cancelled(cluster: str, tmp_path: Path) -> None:
    """SIGTERM while a job runs: the job ends KILLED on the controller, the test reports cancelled
    (a stop is not the test running out of time)."""
    tests = [{"name": "sleepy", "argv": ["sh", "-c", "echo started; sleep 30"], "device": "cpu"}]
    args = _args(cluster, "stop", custom=tests)
    with forked_child("workers.smoke_tests:main", args, tmp_path / "run", name="tests") as child:
        ready = child.wait_message(Kind.READY, timeout_s=10)
        (job_id,) = ready["jobs"][0]["job_ids"]
        wait_for(lambda: list_jobs(cluster, tmp_path / "probe", "stop")[0]["state"] == "running", 10, "job running")
        assert child.stop_and_reap() == 0
        assert child.stop_to_exit_s is not None and child.stop_to_exit_s < STOP_WITHIN_S
    (result,) = child.of(Kind.RESULT)
    assert (result["test"], result["outcome"]) == ("sleepy", "cancelled")
    assert "sigterm" in result["error"]
    assert child.events("job_terminated")[0]["job"] == job_id
    assert [(j["job_id"], j["state"]) for j in list_jobs(cluster, tmp_path / "probe", "stop")] == [(job_id, "killed")]


def test_a_test_past_job_timeout_is_terminated_and_reported_as_timeout(cluster: str, tmp_path: Path) -> None:
    """job_timeout_s bounds each test: its jobs are terminated and the child goes on to exit 0."""
    tests = [{"name": "slow", "argv": ["sh", "-c", "sleep 30"], "device": "cpu"}]
    args = _args(cluster, "jt", custom=tests, job_timeout_s=0.5)
    child = run_to_end("workers.smoke_tests:main", args, tmp_path / "run", 10, name="tests")
    assert child.exit_code == 0
    (result,) = child.of(Kind.RESULT)
    assert result["outcome"] == "timeout" and "job_timeout_s" in result["error"]
    assert result["jobs"][0]["state"] == "killed"


def test_the_global_deadline_ends_the_tests_with_timeout_results(cluster: str, tmp_path: Path) -> None:
    """At the run's deadline the child cleans up, reports timeout and exits with the deadline code."""
    tests = [{"name": "slow", "argv": ["sh", "-c", "sleep 30"], "device": "cpu"}]
    args = _args(cluster, "dl", custom=tests)
    with forked_child("workers.smoke_tests:main", args, tmp_path / "run", name="tests", timeout_s=2.0) as child:
        assert child.reap(5.0) == 124
    (result,) = child.of(Kind.RESULT)
    assert result["outcome"] == "timeout" and "deadline" in result["error"]
    assert [j["state"] for j in list_jobs(cluster, tmp_path / "probe", "dl")] == ["killed"]
