"""The real Iris (PyPI `marin-iris`, versions in scripts/iris-versions.env) as a local cluster."""

import time
from pathlib import Path
from typing import Any

from tests.helpers.iris import post, running_iris_cluster
from tests.helpers.processes import describe, with_run_tag
from workers import iris_local

WORKER_TIMEOUT_S = 30.0


def _attribute(worker: dict[str, Any], name: str) -> str | None:
    value = worker.get("metadata", {}).get("attributes", {}).get(name, {})
    found = value.get("stringValue", value.get("intValue"))
    return None if found is None else str(found)


def test_local_config_yaml_has_the_port_and_both_groups() -> None:
    text = iris_local.local_config_yaml(18123)
    assert "controller: {local: {port: 18123}}" in text
    assert f"name: {iris_local.DEFAULT_CLUSTER_NAME}\n" in text
    assert "\n  cpu:\n" in text
    assert "\n  tpu_v5e_16:\n" in text
    assert "device_variant: v5litepod-16, device_count: 4," in text
    assert "slice_template: {num_vms: 4, local: {}}" in text
    assert iris_local.local_config_yaml(1, name="other").startswith("name: other\n")


def test_real_iris_serves_a_healthy_cpu_worker_and_leaves_nothing(tmp_path: Path) -> None:
    with running_iris_cluster(tmp_path) as cluster:
        assert cluster.url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        workers: list[dict[str, Any]] = []
        while True:
            workers = post(cluster.url, "iris.cluster.ControllerService/ListWorkers", {}).get("workers", [])
            cpu = [w for w in workers if w.get("healthy") and _attribute(w, "scale-group") == "cpu"]
            if cpu or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        assert cpu, f"no healthy CPU worker within {WORKER_TIMEOUT_S:.0f} s; ListWorkers said {workers}"
        assert cpu[0].get("workerId")
        assert with_run_tag(cluster.run_id), "the cluster's processes do not carry the run tag"

    left = with_run_tag(cluster.run_id)
    assert not left, f"processes of the run left behind:\n{describe(left)}"
    assert cluster.popen.poll() is not None
    assert not list(cluster.tmpdir.glob("iris_*")), sorted(p.name for p in cluster.tmpdir.iterdir())
