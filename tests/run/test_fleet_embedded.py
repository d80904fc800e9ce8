"""The fleet checks on the embedded cluster (observe runs attached to it): what it can serve passes,
what it cannot is recorded or skipped with why, and its fault switch (slices that fail to boot)
fails autoscaler_health with the autoscaler's own reason."""

import uuid
from pathlib import Path
from typing import Any

from local_cluster import layout
from local_cluster.naming import WORKER_CONTAINER
from tests.helpers.cluster import running_local_cluster
from tests.helpers.supervisor_proc import REPO_ROOT, run_argv, started
from tests.helpers.waiting import wait_for
from tests.local_cluster.client import Client

RUN_EXIT_S = 60.0
DEFAULT = (REPO_ROOT / "local_cluster" / "default-config.toml").read_text()
TPU_GROUP = "min_slices = 0\nmax_slices = 2\n"  # the tpu group's, in the default config
assert DEFAULT.count(TPU_GROUP) == 1


def _observe(tmp_path: Path, address: str, *extra: str) -> tuple[int, dict[str, dict[str, Any]]]:
    code, results, _ = _observe_run(tmp_path, address, *extra)
    return code, {t["name"]: t for t in results["tests"]}


def _observe_run(tmp_path: Path, address: str, *extra: str) -> tuple[int, dict[str, Any], Path]:
    run_id = f"fleet-{uuid.uuid4().hex[:6]}"
    argv = run_argv(run_id, tmp_path / "runs", "--controller", address, "--observe", "--observe-s", "2",
                    "--timeout", "50", *extra)  # fmt: skip
    with started(argv, tmp_path, run_id) as sup:
        code = sup.wait_exit(RUN_EXIT_S)
        return code, sup.results(), sup.run_dir


def test_the_embedded_cluster_serves_what_it_can_and_says_why_not_the_rest(tmp_path: Path) -> None:
    """A CPU slice and a 4-host TPU slice up: slices and attributes pass; no database, no bands."""
    config = DEFAULT.replace(TPU_GROUP, "min_slices = 1\nmax_slices = 2\n")
    with running_local_cluster(tmp_path, config) as (address, _state, _popen):
        client = Client(address)
        try:
            wait_for(lambda: len(client.workers()) >= 5, 30, "the CPU worker and the 4 TPU hosts")
        finally:
            client.close()
        code, checks = _observe(tmp_path, address)
    assert code == 0, checks
    assert checks["slices_complete"]["outcome"] == "passed" and checks["slices_complete"]["details"]["slices"] == 2
    assert checks["worker_attributes"]["outcome"] == "passed" and checks["worker_attributes"]["details"]["workers"] == 5
    vitals = checks["controller_vitals"]
    assert vitals["outcome"] == "passed" and vitals["error"] == "" and vitals["details"]["health_s"] < 2
    assert vitals["details"]["select_1"].startswith("not_served: ExecuteRawQuery: unimplemented the embedded")
    budget = checks["scheduler_budget"]
    assert budget["outcome"] == "skipped" and "no priority bands" in budget["error"]


def test_a_group_whose_slices_fail_to_boot_fails_autoscaler_health_with_the_reason(tmp_path: Path) -> None:
    """The fault switch: every TPU slice fails to boot, and the group backs off for 60 s."""
    config = (
        DEFAULT.replace("backoff_base_s = 1.0", "backoff_base_s = 60.0")
        .replace("backoff_max_s = 30.0", "backoff_max_s = 60.0")
        .replace(TPU_GROUP, "min_slices = 1\nmax_slices = 2\n")
        + "\n[scale_groups.fault]\nfail_first_boots = 100\n"
    )
    with running_local_cluster(tmp_path, config) as (address, _state, _popen):
        client = Client(address)
        try:
            wait_for(lambda: [g for g in client.autoscaler().groups if g.consecutive_failures], 30, "a failed boot")
        finally:
            client.close()
        # No slice of the failing group can come up while it backs off: slices_complete judges the
        # listing once rather than waiting its default 10 s for one.
        no_settle = tmp_path / "run.toml"
        no_settle.write_text("[fleet]\nsettle_s = 0\n")
        code, checks = _observe(tmp_path, address, "--config", str(no_settle))
    health = checks["autoscaler_health"]
    assert code == 1 and health["outcome"] == "failed", checks
    assert health["error"].startswith("group tpu: backoff: backoff_triggered: ") and "failed to boot" in health["error"]


def test_the_fleet_table_lists_every_worker_with_its_slice_group_stream_and_logs(tmp_path: Path) -> None:
    """One row per worker discovery listed: id, health, slice and host index, group, its stream's lines, and
    whether its logs were seen alive, in results.json, summary.md and report.html. One TPU host is made
    log-mute (its container log emptied before the run): its row says not alive (stream_no_data)."""
    config = DEFAULT.replace(TPU_GROUP, "min_slices = 1\nmax_slices = 2\n")
    with running_local_cluster(tmp_path, config) as (address, state, _popen):
        client = Client(address)
        try:
            wait_for(lambda: len(client.workers()) >= 5, 30, "the CPU worker and the 4 TPU hosts")
            workers = {w.worker_id: w for w in client.workers()}
        finally:
            client.close()
        [mute] = [w for w in workers.values() if w.attributes.get("tpu-worker-id") == "2"]
        mute_log = layout.container_log(state, mute.vm_name, WORKER_CONTAINER)
        # The host logs its registration once the controller has answered it, so it can be listed
        # before the line is written: emptied before that, the log would not stay empty.
        wait_for(lambda: b" worker_registered " in mute_log.read_bytes(), 30, "the mute host's registration logged")
        mute_log.write_bytes(b"")
        code, results, run_dir = _observe_run(tmp_path, address, "--tests", "slices_complete,worker_attributes")
    assert code == 1 and results["failure_reasons"] == ["stream_no_data"], results["failure_reasons"]
    rows = {r["worker_id"]: r for r in results["fleet"]}
    assert set(rows) == set(workers), results["fleet"]
    tpu = sorted((r["slice_host"], r["group"]) for r in rows.values() if r["slice"] and r["group"] == "tpu")
    assert tpu == [(0, "tpu"), (1, "tpu"), (2, "tpu"), (3, "tpu")], results["fleet"]
    assert len({r["slice"] for r in rows.values() if r["group"] == "tpu"}) == 1
    streams = {s["name"]: s for s in results["streams"]}
    for worker_id, row in rows.items():
        assert row["listed"] and row["healthy"] is True and row["findings"] == [], row
        assert row["group"] == workers[worker_id].attributes["scale-group"], row
        stream = streams[row["stream"]]
        assert row["lines"] == stream["lines"] and row["gaps"] == stream["gaps"], (row, stream)
        assert row["logs_alive"] == ("stream_no_data" if worker_id == mute.worker_id else "yes"), row
    summary, html = (run_dir / "summary.md").read_text(), (run_dir / "report.html").read_text()
    assert "## Fleet" in summary and "<h2>Fleet</h2>" in html
    for worker_id, row in rows.items():
        alive = "no: stream_no_data" if worker_id == mute.worker_id else "yes"
        assert f"| {worker_id} | yes | {row['slice']} | {row['slice_host']} | {row['group']} |" in summary
        assert f"| {alive} |  |" in summary.split(f"| {worker_id} |", 1)[1].split("\n", 1)[0]
        assert f"<td>{worker_id}</td>" in html
