"""The tunnel (workers/tunnel.py) through a real sshd: a busy local port is never a failure, a drop is
reopened; and through a plain forward: one that ends with the run's stop is no drop."""

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from common.deadline import Deadline
from common.ports import free_port
from tests.helpers.processes import alive_pids
from tests.helpers.sshd import Sshd
from tests.helpers.waiting import wait_for
from workers.gcp.cluster import ssh_forward
from workers.groups import ProcessGroups
from workers.transports import SshTransport
from workers.tunnel import Tunnel

OPEN_S = 20.0
BANNER = b"controller"


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def _record(self, event: str, **fields: Any) -> None:
        self.seen.append((event, fields))

    info = warning = error = _record

    def named(self, event: str) -> list[dict[str, Any]]:
        return [f for e, f in self.seen if e == event]


@contextlib.contextmanager
def _greeting(server: socket.socket) -> Iterator[None]:
    """Serve `server` on a thread: every connection gets BANNER (a stand-in for the controller's API)."""
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(BANNER)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


@pytest.fixture
def controller() -> Iterator[int]:
    """The controller's API port on TCP."""
    server = socket.create_server(("127.0.0.1", 0))
    with _greeting(server):
        yield int(server.getsockname()[1])


@pytest.fixture
def unix_controller(tmp_path: Path) -> Iterator[Path]:
    """The controller's API behind a Unix socket (how a port crosses into a network namespace)."""
    path = tmp_path / "controller.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    with _greeting(server):
        yield path


def _healthy(port: int, timeout_s: float) -> bool:
    """Through ssh -L the local port always accepts; only the remote end sends the banner."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn:
            conn.settimeout(timeout_s)
            return conn.recv(len(BANNER)) == BANNER
    except OSError:
        return False


def _tunnel(sshd: Sshd, remote_port: int, events: Events, groups: ProcessGroups, **kw: Any) -> Tunnel:
    login = SshTransport(user=sshd.user, identity_file=str(sshd.user_key), port=sshd.port,
                         known_hosts_file=str(sshd.known_hosts), config_file="none", connect_timeout_s=5)  # fmt: skip
    forward = ssh_forward(login.login_argv(), "127.0.0.1", remote_port)
    return Tunnel(forward, groups, events, _healthy, remote_port, **kw)


def test_a_busy_port_is_skipped_for_a_free_one(tmp_path: Path, controller: int) -> None:
    sshd = Sshd(tmp_path / "sshd").start()
    taken = socket.create_server(("127.0.0.1", 0))  # someone else's listener on the port we pick first
    busy = int(taken.getsockname()[1])
    picks = iter([busy, free_port()])
    events, groups = Events(), ProcessGroups()
    tunnel = _tunnel(sshd, controller, events, groups, pick_port=lambda: next(picks))
    stop_r, stop_w = os.pipe()
    try:
        assert tunnel.open(Deadline.after(OPEN_S), stop_r)
        assert tunnel.port != busy and _healthy(tunnel.port, 2.0)
        assert [e["local_port"] for e in events.named("tunnel_port_busy")] == [busy]
    finally:
        tunnel.close()
        taken.close()
        os.close(stop_r)
        os.close(stop_w)
        sshd.stop()


def test_a_dropped_tunnel_is_reopened_on_the_same_port(tmp_path: Path, controller: int) -> None:
    sshd = Sshd(tmp_path / "sshd").start()
    events, groups = Events(), ProcessGroups()
    tunnel = _tunnel(sshd, controller, events, groups)
    stop_r, stop_w = os.pipe()
    try:
        assert tunnel.open(Deadline.after(OPEN_S), stop_r)
        port = tunnel.port
        assert tunnel.proc is not None
        tunnel.proc.kill()  # the connection drops

        def stop_once_restored() -> None:
            wait_for(lambda: events.named("tunnel_restored"), OPEN_S, "the tunnel reopened")
            os.write(stop_w, b"x")

        # keep_up on this thread: a subprocess's parent-death signal follows the thread that forked it.
        watcher = threading.Thread(target=stop_once_restored)
        watcher.start()
        tunnel.keep_up(stop_r, Deadline.after(OPEN_S), lambda _attempt: 0.1)
        watcher.join(timeout=OPEN_S)
        assert [e["drops"] for e in events.named("tunnel_dropped")] == [1]
        assert tunnel.port == port and _healthy(port, 2.0)
    finally:
        tunnel.close()
        os.close(stop_r)
        os.close(stop_w)
        sshd.stop()


def _forward(to: str) -> Callable[[int], list[str]]:
    """tests/helpers/forward.py from a local port to `to` (tcp:HOST:PORT or unix:/path)."""

    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "tests.helpers.forward", "--listen", f"tcp:127.0.0.1:{port}", "--to", to]

    return argv


def test_a_forward_to_a_unix_socket_on_a_busy_port_moves_to_a_free_one(unix_controller: Path) -> None:
    """The test forward reaches a Unix socket; a local port someone holds is `tunnel_port_busy` in its words."""
    taken = socket.create_server(("127.0.0.1", 0))
    busy = int(taken.getsockname()[1])
    picks = iter([busy, free_port()])
    events, groups = Events(), ProcessGroups()
    tunnel = Tunnel(_forward(f"unix:{unix_controller}"), groups, events, _healthy, 0, pick_port=lambda: next(picks))
    stop_r, stop_w = os.pipe()
    try:
        assert tunnel.open(Deadline.after(OPEN_S), stop_r)
        assert tunnel.port != busy and _healthy(tunnel.port, 2.0)
        [skipped] = events.named("tunnel_port_busy")
        assert skipped["local_port"] == busy and "Address already in use" in skipped["stderr"], skipped
    finally:
        tunnel.close()
        taken.close()
        os.close(stop_r)
        os.close(stop_w)


def test_a_forward_that_ends_with_the_runs_stop_is_not_a_drop(controller: int) -> None:
    """The supervisor TERMs the cluster child and its forward together, the child first; the child
    can see the forward's exit a moment before its own stop (it was not on a CPU): that is the end
    of the run, not a drop to reopen."""
    events, groups = Events(), ProcessGroups()
    tunnel = Tunnel(_forward(f"tcp:127.0.0.1:{controller}"), groups, events, _healthy, controller)
    stop_r, stop_w = os.pipe()
    try:
        assert tunnel.open(Deadline.after(OPEN_S), stop_r)
        assert tunnel.proc is not None
        forward = psutil.Process(tunnel.proc.pid)

        def stop_once_the_forward_ended() -> None:
            forward.terminate()
            wait_for(lambda: not alive_pids([forward.pid]), OPEN_S, "the forward ended")
            os.write(stop_w, b"x")

        watcher = threading.Thread(target=stop_once_the_forward_ended)
        watcher.start()
        tunnel.keep_up(stop_r, Deadline.after(OPEN_S), lambda _attempt: 0.1)
        watcher.join(timeout=OPEN_S)
        assert events.named("tunnel_dropped") == [] and events.named("tunnel_up") and tunnel.drops == 0
    finally:
        tunnel.close()
        os.close(stop_r)
        os.close(stop_w)
