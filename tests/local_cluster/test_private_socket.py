"""`iris-smoke local-cluster` serves on a Unix socket in a private directory, never on TCP,
says how to attach to it, describes itself beside the socket, and gives its VM hosts and
tasks a minimal environment."""

import json
import os
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from local_cluster import private_socket
from tests.helpers.waiting import wait_for
from tests.local_cluster.client import python_argv
from tests.local_cluster.conftest import Cluster

SECRET = "s3cr3t-of-the-caller"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", f"/run/credentials/{SECRET}")


def test_the_controller_listens_only_on_a_private_unix_socket(secret_env: None, cluster: Cluster) -> None:
    assert cluster.address.startswith("unix:/"), cluster.address
    socket_dir = private_socket.socket_of(cluster.address).parent
    info = os.lstat(socket_dir)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    assert (cluster.state_dir / "controller.addr").read_text().strip() == cluster.address
    described = json.loads((socket_dir / "cluster.json").read_text())
    assert described == {"state_dir": str(cluster.state_dir.resolve()), "prefix": "local"}
    assert psutil.Process(cluster.popen.pid).net_connections(kind="inet") == []
    hint = (cluster.state_dir / "local-cluster.stderr").read_text()
    assert f"iris-smoke run --controller {cluster.address}" in hint
    assert cluster.client.workers() is not None


def test_tasks_and_vm_hosts_get_a_minimal_environment(secret_env: None, cluster: Cluster) -> None:
    job_id = cluster.client.launch("env", python_argv("import os; print(*sorted(os.environ))"))
    assert cluster.client.wait_finished(job_id).exit_code == 0
    names = set(" ".join(cluster.client.task_logs(job_id, 0)).split())
    assert "PATH" in names and "CREDENTIALS_DIRECTORY" not in names
    vm_hosts = [p for p in psutil.Process(cluster.popen.pid).children() if "local_cluster.vmhost" in p.cmdline()]
    assert vm_hosts and all("CREDENTIALS_DIRECTORY" not in p.environ() for p in vm_hosts)


def test_the_socket_directory_is_removed_on_stop(cluster: Cluster) -> None:
    socket_dir = private_socket.socket_of(cluster.address).parent
    cluster.popen.terminate()
    assert cluster.popen.wait(timeout=15) == 0
    wait_for(lambda: not socket_dir.exists(), 5, "the socket directory to go")
    assert not (cluster.state_dir / "controller.addr").exists()


def test_a_socket_directory_that_is_not_private_is_not_trusted(tmp_path: Path) -> None:
    shared = tmp_path / "iris-smoke-shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    (shared / "cluster.json").write_text('{"state_dir": "/etc", "prefix": "x"}')
    with pytest.raises(private_socket.SocketPathError, match="not a private directory"):
        private_socket.read_info(f"unix:{shared}/controller.sock")


def _socket_dir(base: Path, name: str, listening: bool, age_s: float) -> tuple[Path, socket.socket]:
    directory = base / f"{private_socket.DIR_PREFIX}{name}"
    directory.mkdir(mode=0o700)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(directory / private_socket.SOCKET_NAME))
    except OSError:
        server.close()
        raise
    if listening:
        server.listen()
    else:
        server.close()
    then = time.time() - age_s
    os.utime(directory, (then, then))
    return directory, server


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A socket's path must fit in sun_path (108 bytes); pytest's tmp_path, longer under xdist, may not."""
    with tempfile.TemporaryDirectory(prefix="ps-") as name:
        yield Path(name)


def test_socket_directories_nobody_listens_on_are_swept_once_stale(short_dir: Path) -> None:
    """A SIGKILLed cluster cannot remove its directory; the next cluster's start does."""
    dead, a = _socket_dir(short_dir, "dead", listening=False, age_s=120)
    young, b = _socket_dir(short_dir, "young", listening=False, age_s=1)
    alive, c = _socket_dir(short_dir, "alive", listening=True, age_s=120)
    try:
        private_socket.sweep_stale(short_dir)
        assert (dead.exists(), young.exists(), alive.exists()) == (False, True, True)
    finally:
        for sock in (a, b, c):
            sock.close()
