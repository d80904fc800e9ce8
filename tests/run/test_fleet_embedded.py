"""The fleet checks on the embedded cluster (observe runs attached to it): what it can serve passes,
what it cannot is recorded or skipped with why, and its fault switch (slices that fail to boot)
fails autoscaler_health with the autoscaler's own reason."""

import uuid
from pathlib import Path
from typing import Any

from tests.helpers.cluster import running_local_cluster
from tests.helpers.supervisor_proc import REPO_ROOT, run_argv, started
from tests.helpers.waiting import wait_for
from tests.local_cluster.client import Client

RUN_EXIT_S = 60.0
DEFAULT = (REPO_ROOT / "local_cluster" / "default-config.toml").read_text()
TPU_GROUP = "min_slices = 0\nmax_slices = 2\n"  # the tpu group's, in the default config
assert DEFAULT.count(TPU_GROUP) == 1


def _observe(tmp_path: Path, address: str) -> tuple[int, dict[str, dict[str, Any]]]:
    run_id = f"fleet-{uuid.uuid4().hex[:6]}"
    argv = run_argv(run_id, tmp_path / "runs", "--controller", address, "--observe", "--observe-s", "2",
                    "--timeout", "50")  # fmt: skip
    with started(argv, tmp_path, run_id) as sup:
        code = sup.wait_exit(RUN_EXIT_S)
        return code, {t["name"]: t for t in sup.results()["tests"]}


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
        code, checks = _observe(tmp_path, address)
    health = checks["autoscaler_health"]
    assert code == 1 and health["outcome"] == "failed", checks
    assert health["error"].startswith("group tpu: backoff: backoff_triggered: ") and "failed to boot" in health["error"]
