"""log_levels, named_ports and endpoint_registration against a real Iris local cluster (PyPI
marin-iris), attached: all three pass, twice in a row on the same cluster (each run's jobs and
endpoint under its own root, nothing left behind), and log_levels fails, naming what came back,
when the loopback proxy (tests/helpers/connect_proxy.py) alters Iris's FetchLogs: a level
dropped (`--drop-log-level WARNING`), or `min_level` ignored (`--ignore-min-level`).
"""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.connect_proxy import running as proxy
from tests.helpers.iris import IrisCluster, jobs_under, post, running_iris_cluster, unfinished
from tests.helpers.supervisor_proc import run_argv, started
from workers.smoke_tests.service_cases import SERVICE_CASES

RUN_EXIT_S = 120.0
CONTROLLER = "iris.cluster.ControllerService"


# The module's tests share its real Iris: one xdist worker runs them all, so it starts once.
pytestmark = pytest.mark.xdist_group("iris_service_cases")


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    with running_iris_cluster(tmp_path_factory.mktemp("iris")) as cluster:
        yield cluster


def _run(tmp_path: Path, url: str, tests: tuple[str, ...]) -> tuple[int, dict[str, Any], str]:
    """An attached run of `tests`; its exit code, results and job root."""
    run_id = f"svc-{uuid.uuid4().hex[:6]}"
    argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url,
                    "--tests", ",".join(tests), "--timeout", "90", "--job-timeout", "60")  # fmt: skip
    with started(argv, tmp_path, run_id) as sup:
        code = sup.wait_exit(RUN_EXIT_S)
        assert (sup.run_dir / "results.json").exists(), sup.output.read_text()[-3000:]
        roots = {"/" + str(e["job"]).split("/")[1] + "/" for e in sup.find("job_launched")}
        assert len(roots) == 1, roots
        return code, sup.results(), roots.pop()


def _tests(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in results["tests"] if t["name"] in SERVICE_CASES}


def test_the_service_cases_pass_on_a_real_iris_twice_in_a_row(iris: IrisCluster, tmp_path: Path) -> None:
    for attempt in (1, 2):
        code, results, root = _run(tmp_path, iris.url, SERVICE_CASES)
        tests = _tests(results)
        assert code == 0 and {n: t["outcome"] for n, t in tests.items()} == dict.fromkeys(SERVICE_CASES, "passed"), (
            attempt, tests)  # fmt: skip
        levels = tests["log_levels"]["details"]
        assert levels["levels"] == {"info-marker": "info", "warning-marker": "warning", "error-marker": "error"}
        assert levels["min_level_warning"] == ["warning-marker", "error-marker"]
        endpoint = tests["endpoint_registration"]["details"]
        assert endpoint["endpoint"] == f"{root}endpoint_registration/smoke", endpoint
        assert endpoint["task"] == f"{root}endpoint_registration/0", endpoint
        # Nothing of the run is left: its jobs ended, its endpoint went with its task.
        jobs = jobs_under(iris.url, root)
        assert jobs and not unfinished(jobs), jobs
        listed = post(iris.url, "iris.cluster.EndpointService/ListEndpoints", {"prefix": root})
        assert not listed.get("endpoints"), listed


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--drop-log-level", "WARNING"), "warning-marker came back unknown, expected warning"),
        (("--ignore-min-level",), "min_level=warning still returned the INFO line: info: I"),
    ],
)
def test_log_levels_fails_naming_what_came_back(
    iris: IrisCluster, tmp_path: Path, flags: tuple[str, ...], said: str
) -> None:
    with proxy(iris.url, *flags) as url:
        code, results, _ = _run(tmp_path, url, ("log_levels",))
    test = _tests(results)["log_levels"]
    assert code == 1 and test["outcome"] == "failed", test
    assert said in test["error"], test
