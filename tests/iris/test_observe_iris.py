"""Observe-only runs against the real Iris, and a run whose identity may not launch jobs.

A real Iris local cluster (PyPI marin-iris) each time; where the test needs an identity with
Iris's read-only `dashboard` role, the loopback proxy (tests/helpers/connect_proxy.py) refuses
LaunchJob with Iris's own Connect error (`permission_denied`, 403) and forwards everything else:
- `--observe`: exit 0, every stream (the controller's and one per worker ListWorkers reports)
  holds lines, and no job was launched (no `job_launched` event, the controller's own ListJobs
  unfiltered lists none);
- a full run whose LaunchJob is refused: exit 3 `controller_unauthenticated` with the fix
  (`--observe`, or the user role) in its events and results, long before its job timeout;
- `--observe` when GetAutoscalerStatus never answers: `autoscaler_unread`, exit 1.
"""

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import processes
from tests.helpers.connect_proxy import running as proxy
from tests.helpers.iris import IrisCluster, post, running_iris_cluster
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.helpers.waiting import wait_for
from workers.child_args import FLEET_CHECKS

RUN_EXIT_S = 90.0
WORKERS_S = 60.0
CONTROLLER = "iris.cluster.ControllerService"
LAUNCH_JOB = f"{CONTROLLER}/LaunchJob"
JOB_TIMEOUT_S = 120.0


# The module's tests share its real Iris: one xdist worker runs them all, so it starts once.
pytestmark = pytest.mark.xdist_group("observe_iris")


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """One real Iris for the module: no test launches a job on it (each checks so) or changes it."""
    with running_iris_cluster(tmp_path_factory.mktemp("iris")) as cluster:
        yield cluster


def _run_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def _workers(url: str) -> set[str]:
    return {str(w["workerId"]) for w in post(url, f"{CONTROLLER}/ListWorkers", {}).get("workers", [])}


def _healthy_workers(url: str, at_least: int) -> set[str]:
    """The default iris-local config keeps a buffer slice of each CPU group: wait for both."""

    def healthy() -> set[str]:
        workers = post(url, f"{CONTROLLER}/ListWorkers", {}).get("workers", [])
        found = {str(w["workerId"]) for w in workers if w.get("healthy")}
        return found if len(found) >= at_least else set()

    return wait_for(healthy, WORKERS_S, f"{at_least} healthy Iris workers")


def _all_jobs(url: str) -> list[dict[str, Any]]:
    """Every job the controller knows, no prefix filter: what anyone launched."""
    return list(post(url, f"{CONTROLLER}/ListJobs", {"query": {"limit": 500}}).get("jobs", []))


def _assert_nothing_left(sup: SupervisorProc) -> None:
    results = sup.results()
    assert results["processes"]["leaked"] == 0 and results["processes"]["zombies"] == 0
    assert processes.with_run_tag(sup.run_id) == []


def test_an_observe_run_launches_nothing_and_every_stream_holds_lines(iris: IrisCluster, tmp_path: Path) -> None:
    run_id = _run_id("observe")
    before = _healthy_workers(iris.url, 2)
    # The default config has no slice (its TPU group keeps none): slices_complete is skipped once
    # it has listed the workers again for settle_s; 1 s instead of 10, the same skip.
    config = tmp_path / "settle.toml"
    config.write_text("[fleet]\nsettle_s = 1\n")
    argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", iris.url, "--observe",
                    "--observe-s", "6", "--discovery-interval", "1", "--timeout", "60",
                    "--config", str(config))  # fmt: skip
    with started(argv, tmp_path, run_id) as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
        after = _workers(iris.url)
        results = sup.results()
        assert results["observe"] is True and results["failure_reasons"] == []
        assert [t["name"] for t in results["tests"]] == list(FLEET_CHECKS)  # they launch nothing
        assert results["jobs_confirmed"] is None and "tests" not in {c["name"] for c in results["children"]}
        streams = {s["name"]: s["lines"] for s in results["streams"]}
        workers = {name.removeprefix("stream:") for name in streams if not name.startswith("stream:controller")}
        assert len(streams) - len(workers) == 1, streams  # the controller's
        assert before <= workers <= before | after, (streams, before, after)
        assert all(lines > 0 for lines in streams.values()), streams
        assert results["observation"]["autoscaler_read"] is True
        assert results["observation"]["most_workers_listed"] >= 2
        assert sup.find("job_launched") == [] and sup.find("phase_started", phase="tests") == []
        assert sup.find("phase_finished", phase="observe", outcome="ok")
        _assert_nothing_left(sup)
    assert _all_jobs(iris.url) == []


def test_a_full_run_refused_launchjob_ends_at_once_with_the_observe_hint(iris: IrisCluster, tmp_path: Path) -> None:
    """LaunchJob answered `permission_denied` (the `dashboard` role), everything else real: exit 3
    `controller_unauthenticated` with the fix, within seconds rather than at the job timeout;
    the tests child's sweep of the run's root still ran."""
    run_id = _run_id("refused")
    refuse = f"{LAUNCH_JOB}=permission_denied"
    with proxy(iris.url, "--refuse", refuse) as url:
        argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url,
                        "--tests", "simple,concurrent", "--job-timeout", f"{JOB_TIMEOUT_S:g}",
                        "--timeout", "300")  # fmt: skip
        started_at = time.monotonic()
        with started(argv, tmp_path, run_id) as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 3, sup.output.read_text()[-3000:]
            took_s = time.monotonic() - started_at
            results = sup.results()
            assert results["failure_reasons"][0] == "controller_unauthenticated", results["failure_reasons"]
            refused = results["controller_unauthenticated"]
            assert refused["code"] == "permission_denied" and refused["method"] == LAUNCH_JOB, refused
            assert "run with --observe" in refused["fix"] and "user role" in refused["fix"], refused
            (hint,) = sup.find("launch_not_permitted")
            assert hint["level"] == "error" and hint["fix"] == refused["fix"]
            assert "run with --observe, or provision it with the user role" in sup.output.read_text()
            assert "run with --observe" in (sup.run_dir / "summary.md").read_text()
            # One launch tried; every test reported, none left waiting for its job timeout.
            assert len(sup.find("job_launch_failed")) == 1 and sup.find("job_launched") == []
            assert {t["name"]: t["outcome"] for t in results["tests"]} == {"simple": "error", "concurrent": "error"}
            assert results["jobs_confirmed"] == {"terminated": 0, "confirmed": 0, "unconfirmed": []}
            assert took_s < JOB_TIMEOUT_S / 3, took_s
            _assert_nothing_left(sup)
        assert _all_jobs(iris.url) == []


def test_an_observe_run_whose_autoscaler_is_never_read_fails(iris: IrisCluster, tmp_path: Path) -> None:
    """GetAutoscalerStatus answers `internal` every time: the observe run saw no autoscaler, exit 1."""
    run_id = _run_id("unread")
    refuse = f"{CONTROLLER}/GetAutoscalerStatus=internal"
    with proxy(iris.url, "--refuse", refuse) as url:
        _healthy_workers(iris.url, 1)
        argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url, "--observe",
                        "--observe-s", "4", "--timeout", "60")  # fmt: skip
        with started(argv, tmp_path, run_id) as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 1, sup.output.read_text()[-3000:]
            results = sup.results()
            # The fleet checks that need the autoscaler's status err, quoting the controller's refusal.
            assert results["failure_reasons"] == ["test_failed", "autoscaler_unread"], results["failure_reasons"]
            errors = {t["name"]: t["error"] for t in results["tests"] if t["outcome"] == "error"}
            assert set(errors) == {"slices_complete", "worker_attributes", "autoscaler_health"}, results["tests"]
            assert all(
                "GetAutoscalerStatus: internal" in e and "refused by the test proxy" in e for e in errors.values()
            )
            assert results["observation"]["autoscaler_read"] is False
            assert sup.find("autoscaler_unread", child="monitor:autoscaler")
            _assert_nothing_left(sup)
