"""A real local cluster per test (fast timings unless the test asks for the default config)."""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.controller_target import ApiKind, ControllerTarget
from common.messages import Kind
from tests.helpers.cluster import running_local_cluster
from tests.helpers.forked import run_to_end
from tests.workers.probe_args import ProbeArgs, as_custom_test
from workers.child_args import SuiteArgs

# Short delays so each scenario takes a second or two; the TPU group is a 4-host slice.
FAST_CONFIG = """
[cluster]
heartbeat_interval_s = 0.05
heartbeat_timeout_s = 0.6

[[scale_groups]]
name = "cpu"
accelerator_type = "cpu"
chips_per_host = 4
min_slices = 1
max_slices = 1
boot_delay_s = 0.1

[[scale_groups]]
name = "tpu"
accelerator_type = "tpu"
accelerator_variant = "v5litepod-16"
hosts_per_slice = 4
chips_per_host = 4
min_slices = 0
max_slices = 2
boot_delay_s = 0.5
idle_scale_down_delay_s = 30.0
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """The address of a serving local cluster with FAST_CONFIG."""
    with running_local_cluster(tmp_path, FAST_CONFIG) as (address, _state_dir, _popen):
        yield address


@pytest.fixture
def default_cluster(tmp_path: Path) -> Iterator[str]:
    """The address of a serving local cluster with the packaged default config."""
    with running_local_cluster(tmp_path) as (address, _state_dir, _popen):
        yield address


def embedded(address: str, root: str = "t") -> ControllerTarget:
    """The target a child gets for the embedded cluster at `address`, its jobs under `root`."""
    return ControllerTarget(ApiKind.EMBEDDED, address, root)


def launch_jobs(address: str, run_dir: Path, root: str, *jobs: dict[str, Any]) -> list[str]:
    child = run_to_end(
        "tests.workers.probes:launch",
        ProbeArgs(embedded(address, root), jobs=tuple(as_custom_test(j) for j in jobs)),
        run_dir,
        10,
    )
    job_ids: list[str] = child.of(Kind.RESULT)[0]["job_ids"]
    return job_ids


def list_jobs(address: str, run_dir: Path, root: str) -> list[dict[str, Any]]:
    child = run_to_end("tests.workers.probes:jobs", ProbeArgs(embedded(address, root)), run_dir, 10)
    found: list[dict[str, Any]] = child.of(Kind.RESULT)[0]["jobs"]
    return found


def run_tests(address: str, tmp_path: Path, names: list[str], timeout_s: float = 30, **more: Any) -> dict[str, Any]:
    """The tests child run to its end against the cluster at `address` (a fresh job root); RESULTs by test."""
    args = SuiteArgs(embedded(address, f"r{uuid.uuid4().hex[:8]}"), timeout_s, tuple(names), poll_interval_s=0.1,
                     **more)  # fmt: skip
    child = run_to_end("workers.smoke_tests:main", args, tmp_path / "run", timeout_s + 10, name="tests")
    assert child.exit_code == 0
    return {r["test"]: r for r in child.of(Kind.RESULT)}
