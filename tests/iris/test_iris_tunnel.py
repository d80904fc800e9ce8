"""`--cluster iris` with `[iris] tunnel_command`: the run opens its own way to a remote Iris and keeps it.

Everything is real (the supervisor, a real Iris local cluster, our children) and the tunnel is
`tests/helpers/forward.py`, a plain TCP forward run exactly as a user's `ssh -N -L ...` or
`kubectl port-forward ...` would be: an argv with `{port}` and `{remote_port}` filled in, whose
own readiness line the run never reads (its `/health` through the forward is the handshake).
"""

import contextlib
import dataclasses
import json
import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from common import env
from common.ports import free_port
from tests.helpers import processes
from tests.helpers.iris import IrisCluster, running_iris_cluster
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.helpers.waiting import wait_for
from tests.streams.conftest import read_records
from tests.streams.test_iris_log_follow import Line, expected_lines, fetch_all, log_server, written

RUN_EXIT_S = 150.0
TOKEN_ENV = "SMOKE_TUNNEL_TOKEN"
FORWARD = [sys.executable, "-m", "tests.helpers.forward", "--listen", "tcp:127.0.0.1:{port}",
           "--to", "tcp:127.0.0.1:{remote_port}"]  # fmt: skip
# At most 120 ticks (60 s): the test lets the job end (the release file) once lines came through the
# reopened forward, rather than keeping it 10 s whatever happens.
TICKS_ARGV = "i=0; while [ ! -e {release} ] && [ $i -lt 120 ]; do echo tick $i; i=$((i+1)); sleep 0.5; done"


def ticks(release: Path) -> str:
    """A run config of one test, `ticks`, whose job prints a tick every 0.5 s until `release` exists."""
    argv = ["sh", "-c", TICKS_ARGV.format(release=release)]
    return f'[run]\ntests = []\n\n[[tests]]\nname = "ticks"\nargv = {json.dumps(argv)}\n'


WAIT_S = 30.0


# The module's tests share its real Iris: one xdist worker runs them all, so it starts once.
pytestmark = pytest.mark.xdist_group("iris_tunnel")


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """One real Iris for the module's runs: each reaches it through its own forward and sweeps its jobs."""
    with running_iris_cluster(tmp_path_factory.mktemp("iris")) as cluster:
        yield cluster


def _config(tmp_path: Path, remote_port: int, tests: str, command: list[str] = FORWARD, extra: str = "") -> str:
    path = tmp_path / f"run-{uuid.uuid4().hex[:8]}.toml"
    path.write_text(f"{tests}\n[iris]\ntunnel_command = {json.dumps(command)}\n"
                    f"controller_port = {remote_port}\n{extra}")  # fmt: skip
    return str(path)


def _argv(run_id: str, tmp_path: Path, config: str, *flags: str) -> list[str]:
    return run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--config", config, "--timeout", "100",
                    "--discovery-interval", "1", *flags)  # fmt: skip


def _connected_followers(sup_pid: int, count: int) -> list[set[int]]:
    """The remote TCP ports of what reads the run's log service (its log reader) that hold a connection,
    once `count` do."""
    connected = []
    for proc in processes.followers_under(sup_pid, processes.LOG_SERVICE_READERS):
        with contextlib.suppress(psutil.Error):
            ports = {c.raddr.port for c in proc.net_connections(kind="tcp") if c.raddr}
            if ports:
                connected.append(ports)
    return connected if len(connected) >= count else []


def _argvs_of(run_id: str) -> list[list[str]]:
    found = []
    for proc in processes.with_run_tag(run_id):
        with contextlib.suppress(psutil.Error):
            found.append(proc.cmdline())
    return found


def _assert_nothing_left(sup: SupervisorProc) -> None:
    results = sup.results()
    assert results["processes"]["leaked"] == 0 and results["processes"]["zombies"] == 0
    assert processes.with_run_tag(sup.run_id) == []


def _stream_files(sup: SupervisorProc) -> dict[str, Path]:
    """Each stream's log-service key and its file."""
    logs, files = sup.run_dir / "logs", {}
    for stream in sup.results()["streams"]:
        if stream["role"] == "controller":
            files["/system/controller"] = logs / "controller.jsonl"
        else:
            files[f"/system/worker/{stream['vm']}"] = logs / "vms" / f"{stream['vm']}.jsonl"
    return files


def test_a_run_reaches_iris_only_through_its_tunnel_command(
    iris: IrisCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run passes; the tunnel came up on the port it picked, every child used that address (the
    log reader included) and none the controller's own; the tunnel's environment holds no token."""
    token = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv(TOKEN_ENV, token)
    run_id = f"tun-{uuid.uuid4().hex[:8]}"
    config = _config(tmp_path, iris.port, '[run]\ntests = ["simple"]\n', extra=f'token_env = "{TOKEN_ENV}"\n')
    with started(_argv(run_id, tmp_path, config), tmp_path, run_id) as sup:
        [up] = sup.wait_event("tunnel_up", timeout_s=60)
        environ = psutil.Process(up["tunnel_pid"]).environ()  # /proc/<pid>/environ of the forward
        sup.wait_event("stream_connected", count=2, timeout_s=60)
        argvs = _argvs_of(run_id)
        peers = wait_for(lambda: _connected_followers(sup.popen.pid, 1), WAIT_S, "the log reader connected")
        code = sup.wait_exit(RUN_EXIT_S)
        results = sup.results()
        _assert_nothing_left(sup)
    assert code == 0, sup.output.read_text()[-4000:]
    address = f"http://127.0.0.1:{up['local_port']}"
    assert up["remote_port"] == iris.port
    assert (results["cluster"]["address"], results["cluster"]["mode"]) == (address, "tunnel")
    assert TOKEN_ENV not in environ and token not in "\0".join(environ.values()), sorted(environ)
    assert "PATH" in environ and env.RUN_TAG in environ, "the allowlist, and the run's tag for the audit"
    [forward] = [a for a in argvs if "tests.helpers.forward" in a]
    assert forward == [part.format(port=up["local_port"], remote_port=iris.port) for part in FORWARD]
    assert peers and all(ports == {up["local_port"]} for ports in peers), (peers, up)
    assert not [a for a in argvs if iris.url in " ".join(a)], "no process of the run bypasses the tunnel"
    assert results["outcome"] == "passed" and len(results["streams"]) >= 2
    assert all(s["lines"] > 0 for s in results["streams"]), results["streams"]


@dataclasses.dataclass
class Dropped:
    """A run whose forward was SIGKILLed mid-job, once it ended, and what Iris's store holds for its streams."""

    code: int
    first: dict[str, Any]  # the first tunnel_up
    restored: dict[str, Any]
    results: dict[str, Any]
    files: dict[str, Path]  # each stream's log-service key and its file
    wanted: dict[str, list[Line]]  # each key's lines as Iris's store has them, in order


def drop_the_tunnel_mid_job(sup: SupervisorProc, cluster: IrisCluster, release: Path) -> Dropped:
    """SIGKILL the run's forward while its job (`ticks(release)`) runs, wait for `tunnel_restored`
    and for a line received through the reopened forward, then let the job end; wait for the run's
    end, and read each stream's key from the store (the cluster still up)."""
    first = sup.wait_event("tunnel_up", timeout_s=60)[0]
    sup.wait_event("job_state_changed", new="running", timeout_s=60)
    os.kill(first["tunnel_pid"], signal.SIGKILL)
    [restored] = sup.wait_event("tunnel_restored", timeout_s=30)
    wait_for(lambda: _received_after(sup, restored["timestamp"]), WAIT_S, "a line through the reopened forward")
    release.touch()
    code = sup.wait_exit(RUN_EXIT_S)
    results = sup.results()
    _assert_nothing_left(sup)
    server, files = log_server(cluster), _stream_files(sup)
    wanted = {key: expected_lines(fetch_all(server, key))[0] for key in files}
    return Dropped(code, first, restored, results, files, wanted)


def _last_received(paths: list[Path]) -> str:
    """The latest `received` time of any record in these stream files ('' before the first)."""
    return max((str(r["received"]) for path in paths for r in read_records(path)), default="")


def _received_after(sup: SupervisorProc, timestamp: str) -> bool:
    return _last_received(sup.stream_files())[:23] > timestamp[:23]


def assert_restored_and_every_line_once(sup: SupervisorProc, dropped: Dropped) -> None:
    """Exit 0, one drop, reopened on its port, no gap, and every stream's file exactly the start of its key."""
    assert dropped.code == 0, sup.output.read_text()[-4000:]
    drops = sup.find("tunnel_dropped")
    assert len(drops) == 1, drops  # the kill, and nothing else
    assert drops[0]["local_port"] == dropped.restored["local_port"] == dropped.first["local_port"], drops
    streams = dropped.results["streams"]
    assert sup.find("stream_gap") == [] and all(s["gaps"] == 0 for s in streams), streams
    assert len(dropped.files) >= 2
    for key, path in dropped.files.items():
        got = written(path)
        assert got and got == dropped.wanted[key][: len(got)], key


def test_a_tunnel_killed_mid_tests_is_reopened_on_its_port_and_no_line_is_lost(
    iris: IrisCluster, tmp_path: Path
) -> None:
    """SIGKILL to the forward while a job runs: `tunnel_dropped`, then `tunnel_restored` on the same port;
    the run passes, the streams go on through the new forward, and every stream's file is exactly the
    start of its key in Iris's log store (nothing lost, nothing twice)."""
    run_id = f"tun-drop-{uuid.uuid4().hex[:8]}"
    release = tmp_path / "release"
    config = _config(tmp_path, iris.port, ticks(release))
    with started(_argv(run_id, tmp_path, config), tmp_path, run_id) as sup:
        dropped = drop_the_tunnel_mid_job(sup, iris, release)
    assert_restored_and_every_line_once(sup, dropped)
    first, restored = dropped.first, dropped.restored
    # The logs too came through the tunnel only: Iris's proxy route on the controller's port.
    [route] = sup.find("log_route")
    assert route["route"] == "controller_proxy" and route["url"].startswith(f"http://127.0.0.1:{first['local_port']}/")
    [dropped_event] = sup.find("tunnel_dropped")
    assert dropped_event["exit_code"] == -signal.SIGKILL and dropped_event["drops"] == 1
    reopened = sup.find("tunnel_up")[1]
    assert reopened["local_port"] == first["local_port"] and reopened["tunnel_pid"] != first["tunnel_pid"]
    assert dropped.results["cluster"]["tunnel_drops"] == 1
    assert [t["outcome"] for t in dropped.results["tests"]] == ["passed"]
    received = _last_received(list(dropped.files.values()))
    assert received[:23] > restored["timestamp"][:23], "lines came through the reopened tunnel"


@pytest.mark.parametrize(
    ("command", "said"),
    [
        # Runs, but nothing answers at the far end (ssh -L to a closed port says as much per connection).
        (FORWARD, "Connection refused"),
        # Exits at once, as ssh does when the bastion refuses its key.
        (["sh", "-c", "echo 'bastion: Permission denied (publickey).' >&2; exit 255", "{port}"], "Permission denied"),
    ],
    ids=["nothing-answers", "exits-at-once"],
)
def test_a_tunnel_that_never_comes_up_is_controller_unreachable_with_its_stderr(
    tmp_path: Path, command: list[str], said: str
) -> None:
    run_id = f"tun-down-{uuid.uuid4().hex[:8]}"
    config = _config(tmp_path, free_port(), '[run]\ntests = ["simple"]\n', command)
    with started(_argv(run_id, tmp_path, config, "--boot-timeout", "3"), tmp_path, run_id) as sup:
        code = sup.wait_exit(60)
        results = sup.results()
        _assert_nothing_left(sup)
    assert code == 3, sup.output.read_text()[-4000:]
    assert "controller_unreachable" in results["failure_reasons"], results["failure_reasons"]
    [event] = sup.find("controller_unreachable")
    assert said in event["stderr"], event
