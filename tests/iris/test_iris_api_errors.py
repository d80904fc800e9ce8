"""`iris-smoke run` against the real Iris when the controller wants a token or its API differs a little.

A real Iris local cluster behind the loopback proxy (tests/helpers/connect_proxy.py), which
changes one thing each time; everything else is real:
- Iris's own auth on, reached through a front-end hop (`--ingress`: Iris trusts direct loopback
  peers only): a token it refuses is exit 3, `controller_unauthenticated`, not `test_failed`; the
  admin token it minted carries a run to a pass;
- no endpoint registry (ListEndpoints 404 without a Connect body, as older releases): the log
  server is the controller itself, and the run passes with every stream holding lines;
- the registry giving the log server as `host:port` (the proto's documented form): a failing
  test's log tail is still fetched from it.

The tests share two Iris clusters, one with auth on (`auth_cluster`) and one without (`cluster`); each
test leaves no job unfinished on its cluster.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import processes
from tests.helpers.connect_proxy import running as proxy
from tests.helpers.iris import (
    IrisCluster,
    IrisRPCError,
    files_holding,
    post,
    standing_iris_cluster,
    unfinished_jobs,
)
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.helpers.waiting import wait_for

RUN_EXIT_S = 90.0
# The tests that share a cluster: under `pytest -n` (`--dist loadgroup`) one worker runs them all.
AUTH_SHARED = pytest.mark.xdist_group("iris_api_errors_auth")
SHARED = pytest.mark.xdist_group("iris_api_errors")
WORKER_S = 60.0
CONTROLLER = "iris.cluster.ControllerService"
LIST_ENDPOINTS = "iris.cluster.EndpointService/ListEndpoints"
FETCH_LOGS = "finelog.logging.LogService/FetchLogs"
# The controller's proxy route to its log server (absent in an older Iris: denied to play one).
PROXIED_FETCH_LOGS = f"proxy/system.log-server/{FETCH_LOGS}"
FAILING = """
[run]
tests = []

[[tests]]
name = "exits-one"
argv = ["sh", "-c", "echo the-last-words; exit 1"]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    with standing_iris_cluster(tmp_path_factory.mktemp("iris")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def auth_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """Iris's own auth on (`tests.helpers.iris.AUTH_ON`): only a direct loopback peer is trusted."""
    with standing_iris_cluster(tmp_path_factory.mktemp("iris-auth"), auth=True) as cluster:
        yield cluster


def _run_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def _log_server_url(url: str) -> str:
    address = str(post(url, LIST_ENDPOINTS, {"prefix": "/system/log-server", "exact": True})["endpoints"][0]["address"])
    return address if "://" in address else f"http://{address}"


def _a_worker_is_up(url: str) -> None:
    """Discovery lists every 10 s on Iris: a short run sees the workers that are up when it starts."""

    def healthy() -> list[Any]:
        return [w for w in post(url, f"{CONTROLLER}/ListWorkers", {}).get("workers", []) if w.get("healthy")]

    wait_for(healthy, WORKER_S, "a healthy Iris worker")


def _assert_nothing_left(sup: SupervisorProc) -> None:
    results = sup.results()
    assert results["processes"]["leaked"] == 0 and results["processes"]["zombies"] == 0
    assert processes.with_run_tag(sup.run_id) == []


def _token_config(tmp_path: Path, token: str) -> Path:
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    config = tmp_path / "run.toml"
    config.write_text(f'[iris]\ntoken_file = "{token_file}"\n')
    return config


@AUTH_SHARED
def test_a_token_the_real_iris_refuses_is_controller_unauthenticated(auth_cluster: IrisCluster, tmp_path: Path) -> None:
    """Iris with auth on, reached through an ingress: it refuses the token (401 with its own
    `{"error": ...}` body, not a Connect one). Exit 3 at once, not `test_failed` or the deadline."""
    config = _token_config(tmp_path, "not-a-valid-token")
    run_id = _run_id("auth")
    cluster = auth_cluster
    with proxy(cluster.url, "--ingress") as url:
        argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url, "--config", str(config),
                        "--tests", "simple", "--timeout", "60")  # fmt: skip
        with started(argv, tmp_path, run_id) as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 3, sup.output.read_text()[-3000:]
            results = sup.results()
            assert results["failure_reasons"][0] == "controller_unauthenticated", results["failure_reasons"]
            refused = results["controller_unauthenticated"]
            assert refused["code"] == "unauthenticated" and "authentication failed" in refused["details"], refused
            assert sup.find("controller_unauthenticated")
            assert files_holding(sup.run_dir, "not-a-valid-token") == []
            _assert_nothing_left(sup)
    assert unfinished_jobs(cluster.url) == {}


@AUTH_SHARED
def test_a_token_the_real_iris_accepts_carries_the_run_through_its_auth(
    auth_cluster: IrisCluster, tmp_path: Path
) -> None:
    """The same Iris and ingress with the admin token Iris minted: the run passes, and the token
    is in no file of the run. Without a token Iris refuses the ingress (so the token did the work)."""
    run_id = _run_id("authok")
    cluster = auth_cluster
    with proxy(cluster.url, "--ingress") as url:
        with pytest.raises(IrisRPCError) as tokenless:
            post(url, f"{CONTROLLER}/ListWorkers", {})
        assert tokenless.value.status == 401
        token = cluster.session_token()
        config = _token_config(tmp_path, token)
        _a_worker_is_up(cluster.url)
        argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url, "--config", str(config),
                        "--tests", "simple", "--timeout", "60")  # fmt: skip
        with started(argv, tmp_path, run_id) as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
            results = sup.results()
            assert results["failure_reasons"] == [] and [t["outcome"] for t in results["tests"]] == ["passed"]
            assert all(s["lines"] > 0 for s in results["streams"]), results["streams"]
            assert files_holding(sup.run_dir, token) == []
            _assert_nothing_left(sup)
    assert unfinished_jobs(cluster.url) == {}


@SHARED
def test_without_an_endpoint_registry_logs_come_from_the_controller(cluster: IrisCluster, tmp_path: Path) -> None:
    """An older Iris: neither the controller's /proxy/ route nor ListEndpoints (404s without a Connect
    body): the controller's own address serves FetchLogs."""
    run_id = _run_id("noreg")
    _a_worker_is_up(cluster.url)
    route = f"{FETCH_LOGS}={_log_server_url(cluster.url)}"  # the proxy, as the controller, serves the log service
    with proxy(cluster.url, "--deny", PROXIED_FETCH_LOGS, "--deny", LIST_ENDPOINTS, "--route", route) as url:
        argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url, "--tests", "simple",
                        "--timeout", "60")  # fmt: skip
        with started(argv, tmp_path, run_id) as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 0, sup.output.read_text()[-3000:]
            results = sup.results()
            assert results["failure_reasons"] == [] and results["api_mismatch"] is None
            streams = results["streams"]
            assert any(s["name"].endswith("-controller") for s in streams) and len(streams) >= 2, streams
            assert all(s["lines"] > 0 for s in streams), streams
            assert [e["route"] for e in sup.find("log_route")] == ["controller"]
            _assert_nothing_left(sup)
    assert unfinished_jobs(cluster.url) == {}


@SHARED
def test_a_log_server_registered_as_host_port_serves_the_failed_tasks_tail(
    cluster: IrisCluster, tmp_path: Path
) -> None:
    run_id = _run_id("hostport")
    config = tmp_path / "run.toml"
    config.write_text(FAILING)
    _a_worker_is_up(cluster.url)
    host_port = _log_server_url(cluster.url).removeprefix("http://")
    with proxy(cluster.url, "--deny", PROXIED_FETCH_LOGS, "--log-server-address", host_port) as url:
        argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url,
                        "--config", str(config), "--timeout", "60")  # fmt: skip
        with started(argv, tmp_path, run_id) as sup:
            assert sup.wait_exit(RUN_EXIT_S) == 1, sup.output.read_text()[-3000:]
            results = sup.results()
            assert results["failure_reasons"] == ["test_failed"]
            (test,) = results["tests"]
            assert any("the-last-words" in line for tail in test["log_tail"] for line in tail["lines"]), test
            assert all(s["lines"] > 0 for s in results["streams"]), results["streams"]
            assert [e["route"] for e in sup.find("log_route")] == ["registered"]
            _assert_nothing_left(sup)
    assert unfinished_jobs(cluster.url) == {}
