"""Iris's resource cases (cancel_releases_resources, pending_reason, workdir_offload) and many_tasks
against a real Iris local cluster (PyPI marin-iris), in attach runs: all pass and leave none of the
run's jobs running nor any demand behind; each fails, naming what it saw, when the loopback proxy
(tests/helpers/connect_proxy.py) alters what Iris is sent or answers:
- a workdir file damaged on its way in (`--corrupt-workdir-files`): the task's checksum differs;
- a refusal of the never-fitting job that does not name the CPU (`--refuse LaunchJob=failed_precondition`;
  Iris 0.2.227 itself refuses such a job at submit, naming it): pending_reason fails quoting it.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.connect_proxy import running as proxy
from tests.helpers.iris import IrisCluster, launch_bystander, post, running_iris_cluster
from tests.helpers.supervisor_proc import run_argv, started
from tests.helpers.waiting import wait_for

RUN_EXIT_S = 120.0
WORKERS_S = 60.0
CONTROLLER = "iris.cluster.ControllerService"
CASES = ("cancel_releases_resources", "pending_reason", "workdir_offload", "many_tasks")


# The module's tests share its real Iris: one xdist worker runs them all, so it starts once.
pytestmark = pytest.mark.xdist_group("iris_resource_cases")


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """Iris's local config (two CPU groups, a TPU group scaled on demand), once both CPU workers are up."""
    with running_iris_cluster(tmp_path_factory.mktemp("iris")) as cluster:
        wait_for(lambda: len(_healthy(cluster.url)) >= 2, WORKERS_S, "2 healthy Iris CPU workers")
        yield cluster


def _healthy(url: str) -> list[dict[str, Any]]:
    return [w for w in post(url, f"{CONTROLLER}/ListWorkers", {}).get("workers", []) if w.get("healthy")]


def _run(tmp_path: Path, url: str, tests: tuple[str, ...], *extra: str) -> tuple[int, dict[str, Any], list[str]]:
    run_id = f"res-{uuid.uuid4().hex[:6]}"
    argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url, "--tests", ",".join(tests),
                    "--timeout", "100", *extra)  # fmt: skip
    with started(argv, tmp_path, run_id) as sup:
        code = sup.wait_exit(RUN_EXIT_S)
        assert (sup.run_dir / "results.json").exists(), sup.output.read_text()[-3000:]
        return code, sup.results(), [str(e["job"]) for e in sup.find("job_launched")]


def _tests(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in results["tests"]}


def test_the_resource_cases_pass_on_a_real_iris_and_leave_nothing_behind(iris: IrisCluster, tmp_path: Path) -> None:
    """All pass beside a bystander's job, twice in a row (no name collision); the bystander is untouched."""
    # On the on-demand CPU worker, in Iris's default band (interactive).
    bystander = launch_bystander(
        iris.url, ({"key": "preemptible", "op": "CONSTRAINT_OP_EQ", "value": {"stringValue": "false"}},)
    )
    try:
        _check_the_cases(iris, tmp_path, bystander)
    finally:  # ended and its task gone before the test ends: the cluster outlives it
        post(iris.url, f"{CONTROLLER}/TerminateJob", {"jobId": bystander})
        tasks = lambda: post(iris.url, f"{CONTROLLER}/ListTasks", {"jobId": bystander})["tasks"]  # noqa: E731
        wait_for(lambda: all(t["state"] == "TASK_STATE_KILLED" for t in tasks()), 30, "the bystander killed")


def _check_the_cases(iris: IrisCluster, tmp_path: Path, bystander: str) -> None:
    code, results, launched = _run(tmp_path, iris.url, CASES)
    tests = _tests(results)
    assert code == 0 and {n: t["outcome"] for n, t in tests.items()} == dict.fromkeys(CASES, "passed"), [
        (t["name"], t["outcome"], t["error"]) for t in results["tests"]]  # fmt: skip
    cancel = tests["cancel_releases_resources"]
    fill, again = cancel["jobs"]
    worker = cancel["details"]["worker"]
    assert fill["state"] == "killed" and fill["tasks"][0]["worker_id"] == worker, cancel
    assert again["tasks"][0]["worker_id"] == worker and cancel["details"]["cpu_millicores"] >= 1000, cancel
    # Both in the batch band: on Iris a batch job never preempts anyone's task to fit.
    fill_request = post(iris.url, f"{CONTROLLER}/GetJobStatus", {"jobId": fill["job_id"]})["request"]
    assert fill_request["priorityBand"] == "PRIORITY_BAND_BATCH", fill_request
    # Iris 0.2.227 refuses at submit a job no group's VM could hold, naming the CPU.
    pending = tests["pending_reason"]["details"]
    assert pending["how"] == "refused_at_launch" and "cpu: need 1000000000" in pending["reason"], pending
    # Iris got the file through its blob store (64 KiB, over its 10 KB threshold) and the task said so.
    (offload,) = tests["workdir_offload"]["jobs"]
    request = post(iris.url, f"{CONTROLLER}/GetJobStatus", {"jobId": offload["job_id"]})["request"]
    assert "offload.bin" in str(request["entrypoint"]), request["entrypoint"].keys()
    # many_tasks asks no CPU, as Iris's own suite does (cpu=0); the cancel jobs ask the worker's all.
    (many,) = tests["many_tasks"]["jobs"]
    resources = post(iris.url, f"{CONTROLLER}/GetJobStatus", {"jobId": many["job_id"]})["request"]["resources"]
    assert int(resources.get("cpuMillicores", 0)) == 0, resources
    # Every job of the run has ended, and the never-fitting job left no demand for the autoscaler.
    states = post(iris.url, f"{CONTROLLER}/GetJobState", {"jobIds": launched})["states"]
    assert len(launched) == 4 and all(s in ("JOB_STATE_SUCCEEDED", "JOB_STATE_KILLED") for s in states.values()), states
    status = post(iris.url, f"{CONTROLLER}/GetAutoscalerStatus", {})["status"]
    unmet = status.get("lastRoutingDecision", {}).get("unmetEntries", [])
    assert not any("pending_reason" in str(u) for u in unmet), unmet
    # A second run right after passes too; the bystander ran throughout, never preempted nor restarted.
    again_code, again_results, _ = _run(tmp_path, iris.url, ("cancel_releases_resources", "pending_reason"))
    assert again_code == 0 and {t["outcome"] for t in again_results["tests"]} == {"passed"}, again_results["tests"]
    (task,) = post(iris.url, f"{CONTROLLER}/ListTasks", {"jobId": bystander})["tasks"]
    assert task["state"] == "TASK_STATE_RUNNING" and len(task.get("attempts", [])) <= 1, task


def test_a_workdir_file_damaged_on_the_way_fails_workdir_offload(iris: IrisCluster, tmp_path: Path) -> None:
    with proxy(iris.url, "--corrupt-workdir-files") as url:
        code, results, _ = _run(tmp_path, url, ("workdir_offload",))
    test = _tests(results)["workdir_offload"]
    assert code == 1 and test["outcome"] == "failed", test
    lines = [line for tail in test["log_tail"] for line in tail["lines"]]
    assert any("workdir_offload: offload.bin has sha256" in line and "expected" in line for line in lines), lines


def test_a_refusal_that_does_not_name_the_cpu_fails_pending_reason(iris: IrisCluster, tmp_path: Path) -> None:
    with proxy(iris.url, "--refuse", f"{CONTROLLER}/LaunchJob=failed_precondition") as url:
        code, results, launched = _run(tmp_path, url, ("pending_reason",))
    test = _tests(results)["pending_reason"]
    assert code == 1 and test["outcome"] == "failed" and launched == [], test
    assert "was refused without naming the cpu: failed_precondition LaunchJob: refused by the test proxy" in test[
        "error"], test  # fmt: skip
