"""`ssh -L` from a free local port to the controller VM's API port, kept up for the run.

    ssh … -N -o ExitOnForwardFailure=yes -L 127.0.0.1:<local>:localhost:<port> user@controller

The local port is never fixed: it is picked free (bound to port 0, then released), and
the tiny window in which another process can take it is closed by ExitOnForwardFailure:
ssh exits when it cannot bind, and the next free port is tried (`tunnel_port_busy`).
Up means the controller answered its health check through it, not only that ssh runs.

Once the run has handed out the address, the port stays: a dropped tunnel (ssh exited;
ServerAlive* notices a dead connection within interval times count) is reopened on the same
port with capped backoff, each drop an event (`tunnel_dropped`, then `tunnel_restored`).
The tunnel has a connection of its own, not a stream's multiplexed one, so losing one
never takes the other with it.
"""

import os
import select
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from common.deadline import Deadline
from common.ports import free_port
from workers.groups import ProcessGroups

PORT_ATTEMPTS = 5
HEALTH_TIMEOUT_S = 1.0
WAKE_S = 0.1
STOP_GRACE_S = 1.0
STDERR_TAIL_CHARS = 1000
# What OpenSSH prints when the local end of a forward cannot be bound.
_PORT_BUSY = ("Address already in use", "cannot listen to port", "Could not request local forwarding")

Health = Callable[[int, float], bool]  # (local port, timeout) -> the controller answered


@dataclass
class Tunnel:
    login: Sequence[str]  # ssh up to the host: options, port, key, user (SshTransport.login_argv)
    address: str
    remote_port: int
    groups: ProcessGroups
    log: Any
    health: Health
    pick_port: Callable[[], int] = free_port
    port: int = 0  # 0 until the first opening; then fixed for the run
    drops: int = 0
    proc: "subprocess.Popen[bytes] | None" = None
    _stderr: IO[bytes] | None = field(default=None, repr=False)

    def argv(self, port: int) -> list[str]:
        forward = f"127.0.0.1:{port}:localhost:{self.remote_port}"
        return [*self.login, "-N", "-o", "ExitOnForwardFailure=yes", "-L", forward, self.address]

    def open(self, until: Deadline, stop_fd: int) -> bool:
        """Open on a free port (the first time) or on the run's port; True once healthy."""
        attempts = PORT_ATTEMPTS if self.port == 0 else 1
        for _ in range(attempts):
            port = self.port or self.pick_port()
            self._start(port)
            if self._wait_healthy(port, until, stop_fd):
                self.port = port
                self.log.info("tunnel_up", local_port=port, remote_port=self.remote_port, ssh_pid=self._pid())
                return True
            stderr = self.close()
            if any(marker in stderr for marker in _PORT_BUSY):
                self.log.warning("tunnel_port_busy", local_port=port, stderr=stderr)
                continue
            self.log.warning("tunnel_open_failed", local_port=port, stderr=stderr)
            return False
        return False

    def _start(self, port: int) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = self.groups.start(self.argv(port), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=self._stderr)  # fmt: skip

    def _pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def _wait_healthy(self, port: int, until: Deadline, stop_fd: int) -> bool:
        assert self.proc is not None
        pidfd = os.pidfd_open(self.proc.pid)
        try:
            while not until.expired():
                if self.proc.poll() is not None:
                    return False
                if self.health(port, until.cap(HEALTH_TIMEOUT_S)):
                    return True
                if stop_fd in select.select([stop_fd, pidfd], [], [], until.cap(WAKE_S))[0]:
                    return False
        finally:
            os.close(pidfd)
        return False

    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def close(self) -> str:
        """End ssh (its group); return the tail of what it said on stderr."""
        if self.proc is not None:
            self.groups.stop(self.proc, STOP_GRACE_S)
            self.proc = None
        text = ""
        if self._stderr is not None:
            with self._stderr:
                self._stderr.seek(0)
                text = self._stderr.read().decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]
            self._stderr = None
        return text.strip()

    def keep_up(self, stop_fd: int, until: Deadline, delays: Callable[[int], float]) -> None:
        """Wait for a stop; reopen the tunnel each time it drops (`delays(attempt)` apart)."""
        while not until.expired():
            assert self.proc is not None
            pidfd = os.pidfd_open(self.proc.pid)
            try:
                ready = select.select([stop_fd, pidfd], [], [], until.remaining())[0]
            finally:
                os.close(pidfd)
            if stop_fd in ready or until.expired():
                return
            if self.proc.poll() is not None:
                self._reopen(stop_fd, until, delays)
                if self.proc is None:
                    return

    def _reopen(self, stop_fd: int, until: Deadline, delays: Callable[[int], float]) -> None:
        assert self.proc is not None
        code, dropped_at = self.proc.returncode, time.monotonic()
        self.drops += 1
        self.log.warning("tunnel_dropped", local_port=self.port, exit_code=code, drops=self.drops, stderr=self.close())
        attempt = 0
        while not until.expired():
            if self.open(until, stop_fd):
                self.log.info("tunnel_restored", local_port=self.port, down_s=round(time.monotonic() - dropped_at, 3),
                              attempts=attempt + 1)  # fmt: skip
                return
            attempt += 1
            if stop_fd in select.select([stop_fd], [], [], until.cap(delays(attempt)))[0]:
                return
