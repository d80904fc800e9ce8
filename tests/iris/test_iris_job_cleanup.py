"""On the real Iris, a run's jobs end with the run: at the deadline, on SIGTERM, and after a
normal end that left a job behind (a LaunchJob whose reply never came). Afterwards every job
under the run's root is finished in Iris, every one of its tasks too, and the run's
`jobs_confirmed` event says it saw that itself.

Everything is real (supervisor, children, one Iris local cluster the module's tests share,
attached to with `--cluster iris`); the lost reply goes through a forwarding proxy to that Iris.
Each test leaves the cluster as it found it: no job of any run unfinished.
"""

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.iris import IrisCluster, post, standing_iris_cluster, unfinished_jobs
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.helpers.waiting import wait_for
from tests.iris.test_iris_run import _assert_nothing_left, _proxy

RUN_EXIT_S = 90.0
# The module's tests share its cluster: under `pytest -n` (`--dist loadgroup`) one worker runs them all.
pytestmark = pytest.mark.xdist_group("iris_job_cleanup")
CONTROLLER = "iris.cluster.ControllerService"
JOB_ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_KILLED", "JOB_STATE_WORKER_FAILED",
             "JOB_STATE_UNSCHEDULABLE"}  # fmt: skip
TASK_ENDED = {"TASK_STATE_SUCCEEDED", "TASK_STATE_FAILED", "TASK_STATE_KILLED", "TASK_STATE_WORKER_FAILED",
              "TASK_STATE_UNSCHEDULABLE", "TASK_STATE_PREEMPTED", "TASK_STATE_COSCHED_FAILED"}  # fmt: skip

SLEEPERS = """
[run]
tests = ["simple", "concurrent"]

[[tests]]
name = "sleeps"
argv = ["sleep", "600"]

[[tests]]
name = "sleeps-twice"
argv = ["sleep", "600"]
replicas = 2
"""

LOST_FIRST = """
[run]
tests = []

[[tests]]
name = "lost-launch"
argv = ["sleep", "600"]

[[tests]]
name = "quick"
argv = ["sh", "-c", "echo ok"]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """One warm Iris for the module: its CPU workers up before a run's clock starts, so a short
    deadline still falls while the sleepers run."""
    with standing_iris_cluster(tmp_path_factory.mktemp("iris")) as standing:
        yield standing


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"run-{uuid.uuid4().hex[:8]}.toml"
    path.write_text(text)
    return str(path)


def _root_of(sup: SupervisorProc) -> str:
    roots = {"/" + str(e["job"]).split("/")[1] + "/" for e in sup.find("job_launched")}
    assert len(roots) == 1, roots
    return roots.pop()


def _under(url: str, root: str) -> dict[str, dict[str, Any]]:
    """Every job Iris has under `root`, with its state and its tasks' states, from Iris itself."""
    reply = post(url, f"{CONTROLLER}/ListJobs", {"query": {"jobIdPrefix": root, "limit": 500}})
    jobs = {}
    for job in reply.get("jobs", []):
        tasks = post(url, f"{CONTROLLER}/ListTasks", {"jobId": job["jobId"]}).get("tasks", [])
        jobs[str(job["jobId"])] = {"state": job["state"], "tasks": [t["state"] for t in tasks]}
    return jobs


def _running(url: str, root: str, name: str) -> bool:
    return any(j.endswith(name) and s["state"] == "JOB_STATE_RUNNING" for j, s in _under(url, root).items())


def _sleepers_running(url: str, root: str) -> bool:
    sleepers = [j for name, j in _under(url, root).items() if "/sleeps" in name]
    return len(sleepers) == 2 and all(j["tasks"] and set(j["tasks"]) == {"TASK_STATE_RUNNING"} for j in sleepers)


def _assert_all_ended(url: str, root: str, at_least: int) -> dict[str, dict[str, Any]]:
    jobs = _under(url, root)
    assert len(jobs) >= at_least, jobs
    assert all(j["state"] in JOB_ENDED and j["tasks"] and set(j["tasks"]) <= TASK_ENDED for j in jobs.values()), jobs
    return jobs


def _confirmed(sup: SupervisorProc) -> dict[str, Any] | None:
    """What the run's sweep reported (event and results.json agree), None when it reported nothing.

    Read inside the run's block, checked after Iris's own view, so a run that never confirmed
    fails on what it left in Iris first."""
    events = sup.find("jobs_confirmed")
    swept = sup.results().get("jobs_confirmed")
    assert [{k: e[k] for k in ("terminated", "confirmed", "unconfirmed")} for e in events] == ([swept] if swept else [])
    return dict(swept) if swept else None


def test_the_deadline_mid_tests_ends_every_job_of_the_run_and_its_tasks_in_iris(
    cluster: IrisCluster, tmp_path: Path
) -> None:
    """--timeout expires while `sleep 600` jobs run: exit 124, and Iris shows every job of the root
    and each of its tasks ended; the run confirmed it (no jobs_unconfirmed)."""
    # On the warm cluster the six jobs run about 2 s into the run (under load, 3): the deadline
    # falls while the sleepers run, which the test sees before it does.
    argv = run_argv("cldl", tmp_path / "runs", "--cluster", "iris", "--controller", cluster.url,
                    "--config", _config(tmp_path, SLEEPERS), "--timeout", "10")  # fmt: skip
    with started(argv, tmp_path, "cldl") as sup:
        sup.wait_event("job_launched", count=6, timeout_s=10)
        root = _root_of(sup)
        wait_for(lambda: _running(cluster.url, root, "/sleeps-twice"), 10, "the sleepers running")
        assert not sup.find("stop_requested"), "the deadline came before the sleepers ran"
        assert sup.wait_exit(RUN_EXIT_S) == 124, sup.output.read_text()[-3000:]
        assert sup.results()["failure_reasons"] == ["deadline_exceeded"]
        swept = _confirmed(sup)
        _assert_nothing_left(sup)
    jobs = _assert_all_ended(cluster.url, root, at_least=6)
    sleepers = [j for name, j in jobs.items() if "/sleeps" in name]
    assert len(sleepers) == 2 and all(set(j["tasks"]) == {"TASK_STATE_KILLED"} for j in sleepers), jobs
    assert swept is not None and swept["unconfirmed"] == [] and swept["confirmed"] == len(jobs)
    assert swept["terminated"] >= 2
    assert unfinished_jobs(cluster.url) == {}


def test_sigterm_mid_tests_ends_every_submitted_job_and_its_tasks_in_iris(cluster: IrisCluster, tmp_path: Path) -> None:
    """SIGTERM while the sleepers run: exit 143; every job of the root (not only the sleepers) and
    every task of each is finished in Iris, and the run says it confirmed them all."""
    argv = run_argv("clterm", tmp_path / "runs", "--cluster", "iris", "--controller", cluster.url,
                    "--config", _config(tmp_path, SLEEPERS), "--timeout", "90")  # fmt: skip
    with started(argv, tmp_path, "clterm") as sup:
        sup.wait_event("job_launched", count=6, timeout_s=30)
        root = _root_of(sup)
        # Every sleeper's task running, not only building: Iris 0.2.227 can lose a TerminateJob sent
        # while a task builds (test_iris_run's SIGTERM test), and on the warm cluster they start at once.
        wait_for(lambda: _sleepers_running(cluster.url, root), 20, "every sleeper's task running")
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit(RUN_EXIT_S) == 143, sup.output.read_text()[-3000:]
        assert sup.results()["failure_reasons"] == ["sigterm"]
        swept = _confirmed(sup)
        _assert_nothing_left(sup)
    jobs = _assert_all_ended(cluster.url, root, at_least=6)
    assert swept is not None and swept["unconfirmed"] == [] and swept["confirmed"] == len(jobs)
    assert unfinished_jobs(cluster.url) == {}


def test_a_launch_whose_reply_never_came_is_ended_after_a_normal_end(cluster: IrisCluster, tmp_path: Path) -> None:
    """The first LaunchJob reaches Iris but its reply hangs: the child gives up on it (the test
    errs) while Iris runs the job; the run still ends normally, and its sweep of the root kills
    that job before the run exits."""
    launch = f"{CONTROLLER}/LaunchJob"
    with _proxy(cluster.url, "--hang-first-reply", launch) as url:
        argv = run_argv("cllost", tmp_path / "runs", "--cluster", "iris", "--controller", url,
                        "--config", _config(tmp_path, LOST_FIRST), "--timeout", "90")  # fmt: skip
        with started(argv, tmp_path, "cllost") as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 1, sup.output.read_text()[-3000:]
            outcomes = {t["name"]: (t["outcome"], t.get("error", "")) for t in sup.results()["tests"]}
            root = _root_of(sup)
            swept = _confirmed(sup)
            _assert_nothing_left(sup)
    jobs = _assert_all_ended(cluster.url, root, at_least=2)
    lost = next(j for name, j in jobs.items() if name.endswith("/lost-launch"))
    assert lost["state"] == "JOB_STATE_KILLED" and set(lost["tasks"]) == {"TASK_STATE_KILLED"}, jobs
    assert outcomes["quick"][0] == "passed" and outcomes["lost-launch"][0] == "error", outcomes
    assert "deadline_exceeded" in outcomes["lost-launch"][1]
    assert swept == {"terminated": 1, "confirmed": 2, "unconfirmed": []}
    assert unfinished_jobs(cluster.url) == {}


ONE_SLEEPER = """
[run]
tests = []

[[tests]]
name = "sleeps"
argv = ["sleep", "600"]
"""


def test_a_job_the_run_cannot_end_is_a_jobs_unconfirmed_failure_naming_it(cluster: IrisCluster, tmp_path: Path) -> None:
    """Attached through a proxy that refuses TerminateJob, the deadline leaves the sleeper running:
    the run fails with jobs_unconfirmed (exit 3), and results.json and summary.md name the job."""
    terminate = f"{CONTROLLER}/TerminateJob"
    with _proxy(cluster.url, "--deny", terminate) as url:
        # The warm cluster takes the job about 2 s into the run: the deadline comes after its launch.
        argv = run_argv("clunc", tmp_path / "runs", "--cluster", "iris", "--controller", url,
                        "--config", _config(tmp_path, ONE_SLEEPER), "--timeout", "8")  # fmt: skip
        with started(argv, tmp_path, "clunc") as sup:
            (job,) = [e["job"] for e in sup.wait_event("job_launched", timeout_s=8)]
            assert sup.wait_exit(RUN_EXIT_S) == 3, sup.output.read_text()[-3000:]
            results, summary = sup.results(), (sup.run_dir / "summary.md").read_text()
            swept = _confirmed(sup)
            _assert_nothing_left(sup)
    still = _under(cluster.url, _root_of(sup))
    post(cluster.url, terminate, {"jobId": job})  # the test's own cleanup: the run could not
    ended = lambda: _under(cluster.url, _root_of(sup))[job]["tasks"] == ["TASK_STATE_KILLED"]  # noqa: E731
    wait_for(ended, 30, "the sleeper killed by the test")
    assert unfinished_jobs(cluster.url) == {}
    assert still[job]["state"] == "JOB_STATE_RUNNING", still
    assert sorted(results["failure_reasons"]) == ["deadline_exceeded", "jobs_unconfirmed"], results["failure_reasons"]
    assert swept == {"terminated": 0, "confirmed": 0, "unconfirmed": [job]}
    assert f"NOT confirmed ended: {job}" in summary
