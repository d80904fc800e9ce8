"""Iris's resource cases (cancel_releases_resources, pending_reason, workdir_offload) and many_tasks
on the embedded cluster: they pass where it keeps its promises, and each fails when a fault switch
breaks the one it checks (a killed job's CPU stays held; one task of many fails)."""

from pathlib import Path

import pytest

from tests.helpers.cluster import running_local_cluster
from tests.workers.conftest import run_tests

CASES = ["cancel_releases_resources", "pending_reason", "workdir_offload", "many_tasks"]
# The faults' runs: cancel_releases_resources fails when its same-size job has not run by the job
# timeout, so a short one (the fill runs, and the other cases pass, within about 2 s under load).
JOB_TIMEOUT_S = 6.0

# One CPU host of 2 cores that may not scale (the test fills it), and a second group the
# cancelled job's twin must not run on.
CONFIG = """
[cluster]
heartbeat_interval_s = 0.05
heartbeat_timeout_s = 0.6
{faults}

[[scale_groups]]
name = "cpu"
accelerator_type = "cpu"
chips_per_host = 8
cpu_millicores = 2000
min_slices = 1
max_slices = 1
boot_delay_s = 0.1

[[scale_groups]]
name = "more"
accelerator_type = "cpu"
chips_per_host = 8
cpu_millicores = 2000
min_slices = 1
max_slices = 1
boot_delay_s = 0.1
"""


def test_the_resource_cases_pass_on_the_default_local_cluster(tmp_path: Path) -> None:
    with running_local_cluster(tmp_path) as (address, _, _):
        results = run_tests(address, tmp_path, CASES)
    assert {n: r["outcome"] for n, r in results.items()} == dict.fromkeys(CASES, "passed"), results
    cancel = results["cancel_releases_resources"]
    fill, again = cancel["jobs"]
    assert fill["name"].endswith("-fill") and fill["state"] == "killed", fill
    # Passed once it runs (then ended by the runner) or succeeded, on the worker the first one filled.
    assert again["name"].endswith("-again") and again["state"] in ("killed", "succeeded"), again
    worker = cancel["details"]["worker"]
    assert fill["tasks"][0]["worker_id"] == again["tasks"][0]["worker_id"] == worker, cancel
    print(cancel["details"], results["pending_reason"]["details"])
    assert cancel["details"]["cpu_millicores"] == 4000
    assert "insufficient cpu" in results["pending_reason"]["details"]["reason"]


@pytest.mark.parametrize(
    ("faults", "failing", "why"),
    [
        (
            "hold_killed_resources = true",
            "cancel_releases_resources",
            "did not take a job of the terminated one's size",
        ),
        # Its siblings still running when it fails are killed: how many succeeded varies.
        ("fail_nth_task = 12", "many_tasks", "of 12 tasks succeeded (12 listed): task 11: injected fault"),
    ],
)
def test_a_fault_fails_the_case_that_checks_it(tmp_path: Path, faults: str, failing: str, why: str) -> None:
    with running_local_cluster(tmp_path, CONFIG.replace("{faults}", faults)) as (address, _, _):
        results = run_tests(address, tmp_path, CASES, timeout_s=JOB_TIMEOUT_S, many_tasks=12)
    outcomes = {n: r["outcome"] for n, r in results.items()}
    assert outcomes == {n: "failed" if n == failing else "passed" for n in CASES}, {
        n: r["error"] for n, r in results.items()
    }
    assert why in results[failing]["error"], results[failing]
    print(results[failing]["error"])
