"""Start a real canary daemon in its own session, read its events, stop it and its runs for sure."""

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from common.processes import signal_group
from tests.helpers import processes
from tests.helpers.supervisor_proc import REPO_ROOT, EventsProc, json_lines
from tests.helpers.waiting import wait_for

START_TIMEOUT_S = 15.0
FAKE_RUN = f"sh {Path(__file__).with_name('fake_run.sh')}"


@dataclass
class CanaryProc(EventsProc):
    name = "canary"
    popen: "subprocess.Popen[bytes]"
    state_dir: Path
    output: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def all_events(self) -> list[dict[str, Any]]:
        """Every line of the state directory's events file, whichever daemon wrote it."""
        return json_lines(self.state_dir / "canary-events.jsonl")

    def events(self) -> list[dict[str, Any]]:
        """This daemon's events (an earlier daemon on the same state directory wrote there too)."""
        return [e for e in self.all_events() if e["pid"] == self.pid]

    def run_ids(self) -> list[str]:
        return [e["run"] for e in self.find("run_spawned")]


def canary_argv(state_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "supervisor", "canary", "--state-dir", str(state_dir), *args]


def _kill_everything(canary: CanaryProc) -> None:
    """The daemon's session, then every run it spawned (each in a session of its own) and
    whatever still carries their tags."""
    signal_group(canary.pid, signal.SIGKILL)
    canary.popen.wait(timeout=10)
    for run_id in canary.run_ids():
        for proc in processes.with_run_tag(run_id):
            with suppress(psutil.NoSuchProcess):
                proc.kill()


@contextmanager
def started(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, name: str = "canary", ready: bool = True
) -> Iterator[CanaryProc]:
    """Run the daemon from the repo root in a new session and wait for `canary_ready`;
    whatever happens, it and its runs are gone after."""
    state_dir = tmp_path / "state"
    output = tmp_path / f"{name}.out"
    # Any free port unless the test says: tests run in parallel, and the default port is fixed.
    listen = () if "--listen" in args else ("--listen", "127.0.0.1:0")
    with open(output, "ab") as out:
        popen = subprocess.Popen(
            canary_argv(state_dir, *listen, *args),
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=os.environ | {"IRIS_SMOKE_LOG_FORMAT": "json"} | (env or {}),
        )
    canary = CanaryProc(popen, state_dir, output)
    try:
        if ready:
            canary.wait_event("canary_ready")
        yield canary
    finally:
        _kill_everything(canary)


@dataclass
class NotifyListener:
    """A real AF_UNIX datagram socket standing in for systemd's notify socket."""

    address: str  # what goes into NOTIFY_SOCKET: a path, or @name for the abstract namespace
    sock: socket.socket
    messages: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop_r: int = -1
    _stop_w: int = -1
    _thread: threading.Thread | None = None

    def _serve(self) -> None:
        # A thread, so each datagram is stamped when it arrives rather than when a poll looks.
        while True:
            ready, _, _ = select.select([self.sock, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            data = self.sock.recv(4096)
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def received(self, key: str, value: str | None = None) -> list[tuple[float, dict[str, str]]]:
        with self._lock:
            return [m for m in self.messages if key in m[1] and (value is None or m[1][key] == value)]

    def wait(self, key: str, value: str | None = None, timeout_s: float = START_TIMEOUT_S) -> dict[str, str]:
        return wait_for(lambda: self.received(key, value), timeout_s, f"notify {key}={value}")[0][1]


@contextmanager
def notify_socket(tmp_path: Path, abstract: bool = False) -> Iterator[NotifyListener]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    if abstract:
        name = f"iris-smoke-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind(b"\0" + name.encode())
        address = "@" + name
    else:
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    stop_r, stop_w = os.pipe2(os.O_CLOEXEC)
    listener = NotifyListener(address, sock, _stop_r=stop_r, _stop_w=stop_w)
    listener._thread = threading.Thread(target=listener._serve, daemon=True)
    listener._thread.start()
    try:
        yield listener
    finally:
        os.write(stop_w, b"x")
        listener._thread.join(timeout=5)
        for fd in (stop_r, stop_w):
            os.close(fd)
        sock.close()
