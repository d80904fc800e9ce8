"""How a `--cluster iris-local` run starts the real Iris: the port it wrote, a port taken under it,
a boot timeout too short, the user's own config, and what Iris and its tasks are given.

Real processes throughout: the cluster child forked the way the supervisor forks it, or the
whole supervisor, and a real Iris local cluster (PyPI marin-iris).
"""

import json
import os
import stat
import uuid
from pathlib import Path

import pytest

from common import ports
from common.controller_target import ApiKind, ControllerTarget
from common.messages import Kind
from supervisor.arbiter import own_grace_s
from supervisor.backends.base import IRIS_STOP_GRACE_S
from tests.helpers import processes
from tests.helpers.forked import forked_child
from tests.helpers.iris import iris_bin, post, running_iris_cluster
from tests.helpers.ports import first_free_port_taken
from tests.helpers.supervisor_proc import run_argv, started
from workers import iris_local
from workers.child_args import ClusterArgs

RUN_EXIT_S = 90.0
BOOT_S = 60.0
SECRET = "s3cr3t-the-supervisor-holds"


def test_a_port_taken_before_iris_binds_it_is_retried_on_a_fresh_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first free port is taken by someone else before Iris starts: Iris says so, and the
    cluster child starts it again on a fresh port, healthy there."""
    with first_free_port_taken(monkeypatch) as taken:
        target = ControllerTarget(api=ApiKind.IRIS, address="", job_root=f"boot{uuid.uuid4().hex[:6]}")
        args = ClusterArgs(mode="iris-local", target=target, prefix="boot", boot_timeout_s=BOOT_S, iris_bin=iris_bin())
        # The hard-exit timer the supervisor gives this child, not the helper's 1 s: stopping a
        # real Iris takes seconds, more under load.
        options = {"timeout_s": BOOT_S + 30, "grace_s": own_grace_s(IRIS_STOP_GRACE_S)}
        with forked_child("workers.cluster:main", args, tmp_path / "run", **options) as child:  # type: ignore[arg-type]
            ready = child.wait_message(Kind.READY, timeout_s=BOOT_S)
            address = str(ready["address"])
            assert address.startswith("http://127.0.0.1:") and not address.endswith(f":{taken}")
            assert post(address, "iris.cluster.ControllerService/ListWorkers", {}) is not None
            child.stop()
            assert child.reap(IRIS_STOP_GRACE_S) == 0
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    (retried,) = [e for e in events if e["event"] == "iris_port_taken"]
    assert retried["port"] == taken and "Address already in use" in retried["error"]


def test_the_test_helpers_standing_cluster_also_retries_a_taken_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The standing clusters of the attach tests race other tests for ports as a run does (CI lost
    one: Iris said `Address already in use`, then hung until the readiness wait gave up)."""
    with first_free_port_taken(monkeypatch) as taken, running_iris_cluster(tmp_path) as cluster:
        assert not cluster.url.endswith(f":{taken}")
        assert post(cluster.url, "iris.cluster.ControllerService/ListWorkers", {}) is not None
    (failed,) = [d for d in tmp_path.iterdir() if f"port: {taken}}}" in (d / "config.yaml").read_text()]
    assert "Address already in use" in (failed / "iris.stderr").read_text()


def test_a_boot_timeout_too_short_is_a_clear_start_failure_and_leaves_nothing(tmp_path: Path) -> None:
    run_id = f"boot-{uuid.uuid4().hex[:8]}"
    argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris-local", "--iris-bin", iris_bin(),
                    "--boot-timeout", "0.5", "--timeout", "60")  # fmt: skip
    with started(argv, tmp_path, run_id) as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 3, sup.output.read_text()[-3000:]
        results = sup.results()
        assert "cluster_start_failed" in results["failure_reasons"], results["failure_reasons"]
        (failed,) = sup.find("cluster_start_failed")
        assert "boot timeout" in failed["error"], failed
        assert processes.with_run_tag(run_id) == []
        assert list((sup.run_dir / "iris" / "tmp").glob("iris_*")) == []


# Fails on purpose, so its output comes back as a log tail from Iris's log service.
ENV_CHECK = """
[run]
tests = []

[[tests]]
name = "env-check"
expect = "failed"
argv = [
  "sh", "-c",
  "env | grep -E '^(PATH|HOME|SMOKE_API_TOKEN|GOOGLE_APPLICATION_CREDENTIALS)=' | sed 's/^/task-env: /'; exit 1",
]
"""


def test_a_user_iris_config_is_used_as_is_and_iris_sees_no_supervisor_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--iris-config`: Iris runs the user's YAML unchanged (its own name and port); its credentials land
    under <run>/iris/home, none in the real $HOME; a task sees none of the supervisor's secrets."""
    monkeypatch.setenv("SMOKE_API_TOKEN", SECRET)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", f"/run/credentials/{SECRET}.json")
    name = f"user-{uuid.uuid4().hex[:8]}"
    user_yaml = tmp_path / "mine.yaml"
    user_yaml.write_text(iris_local.local_config_yaml(ports.free_port(), name=name))
    config = tmp_path / "run.toml"
    config.write_text(ENV_CHECK)
    run_id = f"ucfg-{uuid.uuid4().hex[:8]}"
    argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris-local", "--iris-bin", iris_bin(),
                    "--iris-config", str(user_yaml), "--config", str(config), "--timeout", "90")  # fmt: skip
    with started(argv, tmp_path, run_id) as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
        run_dir, results = sup.run_dir, sup.results()
        assert processes.with_run_tag(run_id) == []
    assert (run_dir / "iris" / "cluster.yaml").read_text() == user_yaml.read_text()
    credentials = run_dir / "iris" / "home" / ".config" / "marin" / "credentials" / f"{name}.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert not (Path(os.environ["HOME"]) / ".config" / "marin" / "credentials" / f"{name}.json").exists()
    (test,) = results["tests"]
    task_env = [line for tail in test["log_tail"] for line in tail["lines"] if "task-env: " in line]
    assert any("task-env: PATH=" in line for line in task_env), "the task's environment was captured"
    assert not [line for line in task_env if SECRET in line]


def test_iris_gets_the_allowlisted_environment_with_its_home_and_tmpdir(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "SMOKE_API_TOKEN": SECRET, "PYTHONPATH": "/repo", "HOME": "/root"}
    env = iris_local.iris_env(base, tmp_path / "home", tmp_path / "tmp")
    assert env == {
        "PATH": "/usr/bin", "LANG": "C.UTF-8", "HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp"),
        "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
