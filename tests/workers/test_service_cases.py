"""log_levels, named_ports and endpoint_registration on the embedded cluster: all three pass where
the cluster keeps its promises (levels read from the lines, min_level honoured, ports allocated
and injected, endpoints registered and listed), and each fails, saying what it saw, where a fault
switch breaks one: `drop_task_ports` (no IRIS_PORT_* in the task), `hide_endpoints`
(ListEndpoints lists nothing)."""

import uuid
from pathlib import Path
from typing import Any

import pytest

from common.messages import Kind
from tests.helpers.cluster import running_local_cluster
from tests.helpers.forked import run_to_end
from tests.workers.conftest import FAST_CONFIG, embedded
from workers.child_args import ENDPOINT_HOLD_S, SuiteArgs
from workers.smoke_tests.service_cases import SERVICE_CASES

CPU_ONLY = FAST_CONFIG.split('[[scale_groups]]\nname = "tpu"')[0]


def _run(
    address: str, tmp_path: Path, names: list[str], timeout_s: float = 40, hold_s: float = ENDPOINT_HOLD_S
) -> dict[str, Any]:
    root = f"s{uuid.uuid4().hex[:8]}"
    args = SuiteArgs(embedded(address, root), timeout_s, tuple(names), poll_interval_s=0.1, endpoint_hold_s=hold_s)
    child = run_to_end("workers.smoke_tests:main", args, tmp_path / "run", timeout_s + 10, name="tests")
    assert child.exit_code == 0
    return {r["test"]: r for r in child.of(Kind.RESULT)}


def test_the_service_cases_pass_on_the_embedded_cluster(tmp_path: Path) -> None:
    with running_local_cluster(tmp_path, CPU_ONLY) as (address, _, _):
        results = _run(address, tmp_path, list(SERVICE_CASES))
    assert {n: r["outcome"] for n, r in results.items()} == dict.fromkeys(SERVICE_CASES, "passed"), results
    levels = results["log_levels"]["details"]
    assert levels["levels"] == {"info-marker": "info", "warning-marker": "warning", "error-marker": "error"}
    assert levels["min_level_warning"] == ["warning-marker", "error-marker"]
    endpoint = results["endpoint_registration"]["details"]
    assert endpoint["endpoint"].endswith("-endpoint_registration/smoke") and endpoint["task"].endswith("/0")
    # Found while the task held it, not after: the verdict ended the task.
    assert results["endpoint_registration"]["duration_s"] < ENDPOINT_HOLD_S


# A cluster that never lists the endpoint fails endpoint_registration once its task ends: with a
# 2 s hold rather than 20 (the task still registers its endpoint, holds it and ends).
FAULT_HOLD_S = 2.0


@pytest.mark.parametrize(
    ("fault", "test", "said"),
    [
        ("drop_task_ports = true", "named_ports", "named_ports: IRIS_PORT_HTTP is '', expected an allocated port"),
        ("hide_endpoints = true", "endpoint_registration", "before the controller listed its endpoint 'smoke'"),
    ],
)
def test_a_cluster_that_breaks_a_promise_fails_the_test_that_checks_it(
    fault: str, test: str, said: str, tmp_path: Path
) -> None:
    with running_local_cluster(tmp_path, CPU_ONLY.replace("[cluster]\n", f"[cluster]\n{fault}\n")) as (address, _, _):
        results = _run(address, tmp_path, [test], hold_s=FAULT_HOLD_S)
    result = results[test]
    assert result["outcome"] == "failed", result
    shown = result["error"] + " ".join(line for tail in result["log_tail"] for line in tail["lines"])
    assert said in shown, result
