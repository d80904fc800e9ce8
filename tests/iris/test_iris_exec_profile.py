"""exec_in_container and profile_task against a real Iris local cluster (PyPI marin-iris), in runs attached
with `--controller`:
- Iris's process runtime without py-spy on its PATH: exec passes; ProfileTask answers Iris's stand-in
  profile, and profile_task is skipped saying so;
- with py-spy on its PATH (the dev venv's): both pass, the profile non-empty with samples; a second run
  right after passes too, and each run's jobs are ended afterwards;
- each fails naming what came back when the loopback proxy (tests/helpers/connect_proxy.py) alters
  Iris's reply: ExecInContainer's stdout (`--exec-stdout`), ProfileTask's data (`--empty-profile`);
  a ProfileTask answered later than the call's limit (`--delay`) fails after that one ask.
"""

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.connect_proxy import running as proxy
from tests.helpers.iris import IrisCluster, post, running_iris_cluster
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started

RUN_EXIT_S = 90.0
CONTROLLER = "iris.cluster.ControllerService"
TESTS = ("exec_in_container", "profile_task")
ENDED = {"JOB_STATE_KILLED", "JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED"}
STUB_REASON = (
    f"{CONTROLLER}/ProfileTask: the task's runtime cannot profile: Iris answered its stand-in 'py-spy unavailable"
)


def _path_without_py_spy() -> str:
    return os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "py-spy").exists())


def _py_spy() -> Path:
    found = Path(sys.executable).parent / "py-spy"
    if not found.exists():
        pytest.fail(f"no py-spy beside {sys.executable}: `pip install -e '.[dev]'` installs it", pytrace=False)
    return found


# The module's tests share its real Iris: one xdist worker runs them all, so it starts once.
pytestmark = pytest.mark.xdist_group("iris_exec_profile")


@pytest.fixture(scope="module")
def iris_plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """Iris whose workers find no py-spy (its process runtime then answers a stand-in profile)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PATH", _path_without_py_spy())
        with running_iris_cluster(tmp_path_factory.mktemp("iris-plain")) as cluster:
            yield cluster


@pytest.fixture(scope="module")
def iris_py_spy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """Iris whose workers find py-spy on their PATH (a directory holding only it)."""
    tools = tmp_path_factory.mktemp("py-spy-bin")
    (tools / "py-spy").symlink_to(_py_spy())
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PATH", f"{tools}{os.pathsep}{_path_without_py_spy()}")
        with running_iris_cluster(tmp_path_factory.mktemp("iris-py-spy")) as cluster:
            yield cluster


def _run(tmp_path: Path, url: str, *tests: str) -> tuple[int, dict[str, dict[str, Any]], SupervisorProc]:
    run_id = f"xp-{uuid.uuid4().hex[:6]}"
    argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url,
                    "--tests", ",".join(tests or TESTS), "--timeout", "75")  # fmt: skip
    with started(argv, tmp_path, run_id) as sup:
        code = sup.wait_exit(RUN_EXIT_S)
        assert (sup.run_dir / "results.json").exists(), sup.output.read_text()[-3000:]
        return code, {t["name"]: t for t in sup.results()["tests"]}, sup


def _assert_jobs_ended(url: str, sup: SupervisorProc) -> None:
    """Every job the run launched has ended (the runner terminated it), and the run left no process."""
    launched = [str(e["job"]) for e in sup.find("job_launched")]
    assert {e["test"] for e in sup.find("job_launched")} == set(TESTS), launched
    states = post(url, f"{CONTROLLER}/GetJobState", {"jobIds": launched})["states"]
    assert set(states) == set(launched) and set(states.values()) <= ENDED, states
    assert sup.results()["processes"]["leaked"] == 0


def test_without_py_spy_exec_passes_and_profile_is_skipped_with_iris_stand_in(
    iris_plain: IrisCluster, tmp_path: Path
) -> None:
    code, tests, sup = _run(tmp_path, iris_plain.url)
    assert code == 0 and tests["exec_in_container"]["outcome"] == "passed", tests
    assert tests["exec_in_container"]["details"]["exit_code"] == 0
    assert tests["exec_in_container"]["details"]["command"].startswith("echo iris-smoke-exec-")
    profile = tests["profile_task"]
    assert profile["outcome"] == "skipped" and profile["error"].startswith(STUB_REASON), profile
    _assert_jobs_ended(iris_plain.url, sup)


def test_with_py_spy_both_pass_twice_and_leave_no_job_running(iris_py_spy: IrisCluster, tmp_path: Path) -> None:
    for attempt in ("first", "second"):  # a second run right after: no name collision
        (tmp_path / attempt).mkdir()
        code, tests, sup = _run(tmp_path / attempt, iris_py_spy.url)
        assert code == 0 and {n: t["outcome"] for n, t in tests.items()} == dict.fromkeys(TESTS, "passed"), tests
        details = tests["profile_task"]["details"]
        assert details["format"] == "raw" and details["bytes"] > 0 and details["samples"] > 0, details
        assert details["task"].endswith("/profile_task/0"), details
        _assert_jobs_ended(iris_py_spy.url, sup)


def test_an_exec_answering_the_wrong_output_fails_naming_the_task_and_what_came_back(
    iris_plain: IrisCluster, tmp_path: Path
) -> None:
    with proxy(iris_plain.url, "--exec-stdout", "something else\n") as url:
        code, tests, sup = _run(tmp_path, url, "exec_in_container")
    test = tests["exec_in_container"]
    assert code == 1 and test["outcome"] == "failed", test
    assert "in task /" in test["error"] and "/exec_in_container/0 (job /" in test["error"], test
    assert "returned exit code 0, stdout 'something else\\n', stderr ''; expected 'iris-smoke-exec-" in test["error"]
    assert [e["test"] for e in sup.find("job_launched")] == ["exec_in_container"]


def test_an_empty_profile_fails_naming_the_task(iris_py_spy: IrisCluster, tmp_path: Path) -> None:
    with proxy(iris_py_spy.url, "--empty-profile") as url:
        code, tests, _ = _run(tmp_path, url, "profile_task")
    test = tests["profile_task"]
    assert code == 1 and test["outcome"] == "failed", test
    assert test["error"].startswith("ProfileTask of task /") and "/profile_task/0 (job /" in test["error"], test
    assert test["error"].endswith("returned an empty profile (0 bytes, format raw)"), test


def test_a_profile_not_answered_within_the_call_limit_fails_after_one_ask(
    iris_plain: IrisCluster, tmp_path: Path
) -> None:
    """Each ask starts a profiler on the task's host: one left unanswered is the finding, not asked again."""
    with proxy(iris_plain.url, "--delay", f"{CONTROLLER}/ProfileTask=5") as url:
        code, tests, sup = _run(tmp_path, url, "profile_task")
    test = tests["profile_task"]
    assert code == 1 and test["outcome"] == "failed", test
    assert test["error"].startswith("ProfileTask of task /") and "/profile_task/0 (job /" in test["error"], test
    assert ": no answer within the call's limit (deadline_exceeded " in test["error"], test
    assert sup.find("test_call_failed") == [] and test["duration_s"] < 20, test
