"""The fleet checks against a real Iris local cluster (PyPI marin-iris), in observe runs (they launch
nothing): each passes on a whole cluster, and each fails, naming the object, when the loopback proxy
(tests/helpers/connect_proxy.py) alters Iris's replies:
- a slice that lists one worker short (`--drop-slice-host 2`): slices_complete names the slice and host 2;
- a worker without its group's capacity type (`--drop-attribute preemptible`): worker_attributes names it;
- `SELECT 1` slower than `[fleet] query_fail_s` (`--delay ExecuteRawQuery=...`): controller_vitals fails.
The cluster keeps one v5e-16 slice (4 hosts) and two CPU workers up, so every check has something to judge.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common import ports
from tests.helpers.connect_proxy import running as proxy
from tests.helpers.iris import IrisCluster, post, running_iris_cluster
from tests.helpers.supervisor_proc import run_argv, started
from tests.helpers.waiting import wait_for
from workers import iris_local
from workers.child_args import FLEET_CHECKS

RUN_EXIT_S = 90.0
WORKERS_S = 90.0
CONTROLLER = "iris.cluster.ControllerService"
SLICE_HOSTS = 4


# The module's tests share its real Iris: one xdist worker runs them all, so it starts once.
pytestmark = pytest.mark.xdist_group("fleet_checks")


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """Iris with its v5e-16 slice kept up (a buffer slice), once all six workers are healthy."""
    config = iris_local.local_config_yaml(ports.free_port())
    tpu_buffer = config.replace("    buffer_slices: 0\n", "    buffer_slices: 1\n")
    assert tpu_buffer != config
    with running_iris_cluster(tmp_path_factory.mktemp("iris"), tpu_buffer) as cluster:
        wait_for(lambda: len(_healthy(cluster.url)) >= 2 + SLICE_HOSTS, WORKERS_S, "6 healthy Iris workers")
        yield cluster


def _healthy(url: str) -> list[dict[str, Any]]:
    return [w for w in post(url, f"{CONTROLLER}/ListWorkers", {}).get("workers", []) if w.get("healthy")]


def _observe(tmp_path: Path, url: str, *extra: str, config: str = "") -> tuple[int, dict[str, Any], Path]:
    run_id = f"fleet-{uuid.uuid4().hex[:6]}"
    if config:
        (tmp_path / f"{run_id}.toml").write_text(config)
        extra = ("--config", str(tmp_path / f"{run_id}.toml"), *extra)
    argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url, "--observe",
                    "--observe-s", "2", "--discovery-interval", "1", "--timeout", "75", *extra)  # fmt: skip
    with started(argv, tmp_path, run_id) as sup:
        code = sup.wait_exit(RUN_EXIT_S)
        assert (sup.run_dir / "results.json").exists(), sup.output.read_text()[-3000:]
        return code, sup.results(), sup.run_dir


def _checks(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in results["tests"]}


def test_every_fleet_check_passes_on_a_whole_cluster_and_is_in_every_view(iris: IrisCluster, tmp_path: Path) -> None:
    code, results, run_dir = _observe(tmp_path, iris.url)
    checks = _checks(results)
    assert list(checks) == list(FLEET_CHECKS), results["tests"]
    assert code == 0 and all(c["outcome"] == "passed" for c in checks.values()), checks
    vitals = checks["controller_vitals"]["details"]
    assert vitals["health_s"] < 2 and vitals["select_1_s"] < 2 and vitals["threads"] > 0 and vitals["fds"] > 0
    assert vitals["rss_bytes"] > 10 << 20 and "tree_hash" in vitals
    assert checks["slices_complete"]["details"]["slices"] == 1
    assert checks["worker_attributes"]["details"]["workers"] >= 2 + SLICE_HOSTS
    summary, junit, html = ((run_dir / f).read_text() for f in ("summary.md", "junit.xml", "report.html"))
    for name in FLEET_CHECKS:
        assert f"| {name} | passed |" in summary and f'name="{name}"' in junit and name in html
    _every_worker_in_the_fleet_table(iris.url, results, summary, html)


def _every_worker_in_the_fleet_table(url: str, results: dict[str, Any], summary: str, html: str) -> None:
    """Every worker Iris lists is a row, with its slice, host index and group, its stream and its logs."""
    listed = {w["workerId"]: w for w in _healthy(url)}
    rows = {r["worker_id"]: r for r in results["fleet"]}
    assert set(listed) <= set(rows) and all(r["listed"] and r["healthy"] for r in rows.values()), results["fleet"]
    for worker_id, worker in listed.items():
        row, attributes = rows[worker_id], _attributes(worker)
        assert row["group"] == attributes["scale-group"] and row["slice"] == attributes.get("tpu-name", ""), row
        assert row["stream"] and row["logs_alive"] == ("yes" if row["lines"] else "no_lines"), row
        assert f"| {worker_id} | yes | {row['slice']} |" in summary and f"<td>{worker_id}</td>" in html
    hosts = sorted(r["slice_host"] for r in rows.values() if r["slice"])
    assert hosts == list(range(SLICE_HOSTS)), results["fleet"]


def _attributes(worker: dict[str, Any]) -> dict[str, str]:
    """A ListWorkers worker's attributes as text (Iris sends each as a typed AttributeValue)."""
    said = worker.get("metadata", {}).get("attributes", {})
    return {k: str(next(iter(v.values()))) if isinstance(v, dict) else str(v) for k, v in said.items()}


def test_a_slice_one_worker_short_fails_naming_the_slice_and_the_host(iris: IrisCluster, tmp_path: Path) -> None:
    with proxy(iris.url, "--drop-slice-host", "2") as url:
        code, results, run_dir = _observe(tmp_path, url, "--tests", "slices_complete",
                                          config="[fleet]\nsettle_s = 1\n")  # fmt: skip
    check = _checks(results)["slices_complete"]
    assert code == 1 and check["outcome"] == "failed" and "test_failed" in results["failure_reasons"]
    assert "workers listed (tpu-vm-count), host 2 missing" in check["error"], check
    assert "slice iris-tpu_v5e_16" in check["error"] or "slice iris-tpu-v5e-16" in check["error"], check
    assert "host 2 missing" in (run_dir / "junit.xml").read_text()
    [missing] = [r for r in results["fleet"] if not r["listed"]]
    assert missing["worker_id"] == "" and missing["slice_host"] == 2 and missing["logs_alive"] == "no_stream"
    assert missing["slice"] in check["error"] and missing["group"], missing
    assert missing["findings"][0]["check"] == "slices_complete", missing
    assert f"| (no worker listed) | not listed | {missing['slice']} | 2 |" in (run_dir / "summary.md").read_text()


def test_a_worker_without_its_capacity_type_fails_naming_the_worker(iris: IrisCluster, tmp_path: Path) -> None:
    with proxy(iris.url, "--drop-attribute", "preemptible") as url:
        code, results, _ = _observe(tmp_path, url, "--tests", "worker_attributes")
    check = _checks(results)["worker_attributes"]
    assert code == 1 and check["outcome"] == "failed", check
    assert check["error"].startswith("worker worker-") and "carries no preemptible attribute" in check["error"]
    # The proxy drops it from the first worker listed: that worker's row says so, and no other row has a finding.
    found = [(r["worker_id"], r["findings"]) for r in results["fleet"] if r["findings"]]
    said = [{"check": "worker_attributes", "problem": "carries no preemptible attribute"}]
    assert found == [(found[0][0], said)] and check["error"].startswith(f"worker {found[0][0]}:"), results["fleet"]


def test_a_select_1_slower_than_the_limit_fails_controller_vitals(iris: IrisCluster, tmp_path: Path) -> None:
    limits = "[fleet]\nquery_warn_s = 0.5\nquery_fail_s = 1\n"
    with proxy(iris.url, "--delay", f"{CONTROLLER}/ExecuteRawQuery=1.5") as url:
        code, results, _ = _observe(tmp_path, url, "--tests", "controller_vitals", config=limits)
    check = _checks(results)["controller_vitals"]
    assert code == 1 and check["outcome"] == "failed", check
    assert "controller: SELECT 1 took 1." in check["error"] and "(fail over 1 s)" in check["error"]


def test_a_user_capped_below_the_band_asked_for_is_a_warning_naming_both(iris: IrisCluster, tmp_path: Path) -> None:
    """Iris's own budget: the smoke user (anonymous, on a local Iris) capped at the batch band. (A
    demotion by budget spent needs running work over the limit: tests/workers/test_fleet_judgements.py.)"""
    user = post(iris.url, f"{CONTROLLER}/GetCurrentUser", {})["userId"]
    budget = {"userId": user, "budgetLimit": "1", "maxBand": "PRIORITY_BAND_BATCH"}
    post(iris.url, f"{CONTROLLER}/SetUserBudget", budget)
    try:
        code, results, _ = _observe(tmp_path, iris.url, "--tests", "scheduler_budget")
    finally:
        post(iris.url, f"{CONTROLLER}/SetUserBudget", {"userId": user, "budgetLimit": "0"})
    check = _checks(results)["scheduler_budget"]
    assert code == 0 and check["outcome"] == "passed", check
    said = f"warning: user {user}: may submit at most band batch, below the interactive band asked for"
    assert check["error"].startswith(said), check
    assert check["details"]["max_band"] == "batch" and check["details"]["asked_band"] == "interactive"
