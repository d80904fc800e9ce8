"""The parity tests (accelerator_probe, region_constrained, nested_constraints, non_preemptible)
on the embedded cluster: they pass where the cluster keeps its promises, fail where it breaks
one (a fault switch), are skipped where it cannot serve them, and a failed scale-up fails a
test at once with the autoscaler's reason."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.messages import Kind
from tests.helpers.cluster import running_local_cluster
from tests.helpers.forked import run_to_end
from tests.workers.conftest import FAST_CONFIG, embedded, run_tests
from tests.workers.probe_args import ProbeArgs

PARITY = ["accelerator_probe", "region_constrained", "nested_constraints", "non_preemptible"]

# Two CPU groups in two regions; the preemptible one sorts first by name, so a scheduler
# that ignores constraints (first fit in name order) puts every CPU task there.
TWO_REGIONS = """
[cluster]
heartbeat_interval_s = 0.05
heartbeat_timeout_s = 0.6
{faults}

[[scale_groups]]
name = "aspot"
accelerator_type = "cpu"
region = "local-a"
preemptible = true
chips_per_host = 4
min_slices = 1
boot_delay_s = 0.1

[[scale_groups]]
name = "cpu"
accelerator_type = "cpu"
region = "local-b"
chips_per_host = 4
min_slices = 1
boot_delay_s = 0.1
"""


def _run(address: str, tmp_path: Path, names: list[str], timeout_s: float = 30, **more: Any) -> dict[str, Any]:
    return run_tests(address, tmp_path, names, timeout_s, **more)


@pytest.fixture
def faulty(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    with running_local_cluster(tmp_path, TWO_REGIONS.replace("{faults}", request.param)) as (address, _, _):
        _both_workers_up(address, tmp_path)
        yield address


def _both_workers_up(address: str, tmp_path: Path) -> None:
    """Both CPU hosts registered, so first fit sees the preemptible one first."""
    args = ProbeArgs(embedded(address, "w"), count=2)
    child = run_to_end("tests.workers.probes:workers_up", args, tmp_path / "up", 10, name="up")
    assert len(child.of(Kind.RESULT)[0]["workers"]) == 2


def test_parity_tests_pass_on_the_default_local_cluster(tmp_path: Path) -> None:
    """Two regions, a preemptible group, a TPU slice: all four run and pass; the child job ran in local-b."""
    with running_local_cluster(tmp_path) as (address, _, _):
        results = _run(address, tmp_path, PARITY)
    assert {n: r["outcome"] for n, r in results.items()} == dict.fromkeys(PARITY, "passed"), results
    (probe,) = results["accelerator_probe"]["jobs"]
    assert probe["name"].endswith("accelerator_probe-tpu") and probe["state"] == "succeeded"
    (parent,) = results["nested_constraints"]["jobs"]
    assert parent["tasks"][0]["worker_id"].split("-")[-3] == "spot"  # local-b is the cpu-spot group


@pytest.mark.parametrize(
    ("faulty", "failing"),
    [
        ("ignore_constraints = true", ["region_constrained", "non_preemptible", "nested_constraints"]),
        ("drop_child_constraints = true", ["nested_constraints"]),
    ],
    indirect=["faulty"],
)
def test_a_cluster_that_breaks_a_constraint_fails_the_tests_that_check_it(
    faulty: str, failing: list[str], tmp_path: Path
) -> None:
    results = _run(faulty, tmp_path, PARITY[1:])
    outcomes = {n: r["outcome"] for n, r in results.items()}
    assert outcomes == {n: "failed" if n in failing else "passed" for n in PARITY[1:]}, results
    for name in failing:
        assert "violating" in results[name]["error"], results[name]


def test_tests_the_cluster_cannot_serve_are_skipped_with_the_reason(tmp_path: Path) -> None:
    """One region and no accelerator: probe and region skipped (not failed); the others still run."""
    cpu_only = FAST_CONFIG.split('[[scale_groups]]\nname = "tpu"')[0]
    with running_local_cluster(tmp_path, cpu_only) as (address, _, _):
        results = _run(address, tmp_path, PARITY)
    outcomes = {n: r["outcome"] for n, r in results.items()}
    assert outcomes == {"accelerator_probe": "skipped", "region_constrained": "skipped",
                        "nested_constraints": "passed", "non_preemptible": "passed"}, results  # fmt: skip
    assert "no accelerator" in results["accelerator_probe"]["error"]
    assert "config names no region" in results["region_constrained"]["error"]


def test_a_named_region_overrides_discovery(tmp_path: Path) -> None:
    with running_local_cluster(tmp_path, TWO_REGIONS.replace("{faults}", "")) as (address, _, _):
        _both_workers_up(address, tmp_path)
        results = _run(address, tmp_path, ["region_constrained"], region="local-a")
        missing = _run(address, tmp_path, ["region_constrained"], region="mars-1")
    assert results["region_constrained"]["outcome"] == "passed"
    assert "aspot" in results["region_constrained"]["jobs"][0]["tasks"][0]["worker_id"]
    assert missing["region_constrained"]["outcome"] == "skipped"
    assert "mars-1" in missing["region_constrained"]["error"]


def test_a_failed_scale_up_fails_the_test_at_once_with_the_autoscalers_reason(tmp_path: Path) -> None:
    """The TPU group's first boot fails (backoff 60 s): coscheduled fails in seconds, not at job_timeout_s."""
    config = FAST_CONFIG.replace("[cluster]\n", "[cluster]\nbackoff_base_s = 60.0\nbackoff_max_s = 60.0\n")
    config += "\n[scale_groups.fault]\nfail_first_boots = 1\n"
    with running_local_cluster(tmp_path, config) as (address, _, _):
        results = _run(address, tmp_path, ["coscheduled"], timeout_s=60)
    cosched = results["coscheduled"]
    assert cosched["outcome"] == "failed", cosched
    assert cosched["error"].startswith("autoscaler: backoff_triggered in group tpu: slice"), cosched
    assert cosched["duration_s"] < 20
