"""A local port forward to the controller's API, kept up for the run: the one tunnel of the tree.

The forward is a program the caller names by a function of the local port: `ssh -N -o
ExitOnForwardFailure=yes -L 127.0.0.1:<port>:localhost:<controller port> user@vm` to a GCP
controller VM (workers/gcp/cluster.py), or the user's `[iris] tunnel_command` (an ssh to a
bastion, a `kubectl port-forward`; workers/iris_tunnel.py). It runs in a process group of its
own (`ProcessGroups`), with the allowlisted environment (`tunnel_env`): no Iris token, nothing
of the supervisor's but what a forward's own login needs (ssh agent, kubeconfig, credentials dir).

The local port is never fixed: it is picked free (bound to port 0, then released), and the
tiny window in which another process can take it is closed by the forward itself: it exits
saying the address is in use (ssh's ExitOnForwardFailure, kubectl, our test forward), and the
next free port is tried (`tunnel_port_busy`). Up means the controller answered its health
check through it, not only that the program runs: many forwards listen before they connect.

Once the run has handed out the address, the port stays: a dropped tunnel (the program
exited) is reopened on the same port with capped backoff, each drop an event
(`tunnel_dropped`, then `tunnel_restored`). The tunnel has a connection of its own, not a
stream's multiplexed one, so losing one never takes the other with it.
"""

import dataclasses
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from common.backoff import capped_exponential
from common.child_exit import ChildExit
from common.controller_target import ControllerTarget
from common.deadline import Deadline
from common.env import without_secrets
from common.fdio import readable
from common.ports import free_port
from common.processes import wait_exit
from local_cluster.environment import minimal_env
from workers.cluster import log_route
from workers.controller.api import open_controller
from workers.groups import ProcessGroups
from workers.messages import ClusterReady, TunnelDrops
from workers.runtime import ChildContext

PORT_ATTEMPTS = 5
HEALTH_TIMEOUT_S = 1.0
WAKE_S = 0.1
STOP_GRACE_S = 1.0
STDERR_TAIL_CHARS = 1000
BACKOFF_BASE_S = 0.2
BACKOFF_CAP_S = 5.0
# A forward's exit this close to a stop of ours is the stop (see `_stop_follows`); a real drop's
# reopening waits this much longer, within its first backoff anyway.
STOP_SETTLE_S = 0.2
# What forwards print when their local end cannot be bound, lower-cased: OpenSSH's three
# wordings, and the kernel's EADDRINUSE text that kubectl and most others pass on.
_PORT_BUSY = ("address already in use", "cannot listen to port", "could not request local forwarding")
# Beyond `minimal_env`: what a forward's own tool reads to authenticate: the ssh agent, kubectl's
# config, and a systemd unit's credentials directory (an ssh_config's `IdentityFile
# ${CREDENTIALS_DIRECTORY}/ssh-key`, systemd/examples/remote-iris).
TUNNEL_KEPT = frozenset({"SSH_AUTH_SOCK", "KUBECONFIG", "CREDENTIALS_DIRECTORY"})

Health = Callable[[int, float], bool]  # (local port, timeout) -> the controller answered
Command = Callable[[int], Sequence[str]]  # local port -> the forward's argv


def tunnel_env(source: Mapping[str, str]) -> dict[str, str]:
    """The forward's environment: the allowlist, never a secret variable (the Iris token's, common.env)."""
    return without_secrets(minimal_env(source) | {k: v for k, v in source.items() if k in TUNNEL_KEPT})


def controller_health(target: ControllerTarget, deadline: Deadline) -> Health:
    """Iris's `/health` through the forward on a port (a 401/403 counts: connect_api.HEALTH_ANSWERED)."""

    def healthy(port: int, timeout_s: float) -> bool:
        local = dataclasses.replace(target, address=f"http://127.0.0.1:{port}")
        with open_controller(local, deadline) as controller:
            return controller.serving(timeout_s)

    return healthy


def backoff(attempt: int) -> float:
    return capped_exponential(attempt, BACKOFF_BASE_S, BACKOFF_CAP_S, 0.2)


@dataclass
class Tunnel:
    command: Command
    groups: ProcessGroups
    log: Any
    health: Health
    remote_port: int  # for the events: where the forward leads
    env: Mapping[str, str] = field(default_factory=lambda: tunnel_env(os.environ))
    pick_port: Callable[[], int] = free_port
    port: int = 0  # 0 until the first opening; then fixed for the run
    drops: int = 0
    stderr_tail: str = ""  # what the forward said before it last closed
    exit_code: int | None = None  # how it last ended by itself (None: we stopped it)
    proc: "subprocess.Popen[bytes] | None" = None
    _stderr: IO[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self, until: Deadline, stop_fd: int) -> bool:
        """Open on a free port (the first time) or on the run's port; True once healthy."""
        attempts = PORT_ATTEMPTS if self.port == 0 else 1
        for _ in range(attempts):
            port = self.port or self.pick_port()
            argv = self._start(port)
            if self._wait_healthy(port, until, stop_fd):
                self.port = port
                self.log.info(
                    "tunnel_up", local_port=port, remote_port=self.remote_port, tunnel_pid=self._pid(), argv=argv
                )
                return True
            stderr = self.close()
            if any(marker in stderr.lower() for marker in _PORT_BUSY):
                self.log.warning("tunnel_port_busy", local_port=port, stderr=stderr)
                continue
            self.log.warning("tunnel_open_failed", local_port=port, exit_code=self.exit_code, stderr=stderr)
            return False
        return False

    def _start(self, port: int) -> list[str]:
        argv = list(self.command(port))
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.proc = self.groups.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=self._stderr, env=dict(self.env))  # fmt: skip
        return argv

    def _pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def _wait_healthy(self, port: int, until: Deadline, stop_fd: int) -> bool:
        assert self.proc is not None
        while not until.expired():
            if self.proc.poll() is not None:
                return False
            if self.health(port, until.cap(HEALTH_TIMEOUT_S)):
                return True
            wait_exit(self.proc, until.within(WAKE_S), [stop_fd])
            if readable(stop_fd):
                return False
        return False

    def exited(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def close(self) -> str:
        """End the forward (its group); return the tail of what it said on stderr."""
        if self.proc is not None:
            self.exit_code = self.proc.poll()
            self.groups.stop(self.proc, STOP_GRACE_S)
            self.proc = None
        text = ""
        if self._stderr is not None:
            with self._stderr:
                self._stderr.seek(0)
                text = self._stderr.read().decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]
            self._stderr = None
            self.stderr_tail = text.strip()
        return text.strip()

    def keep_up(self, stop_fd: int, until: Deadline, delays: Callable[[int], float] = backoff) -> None:
        """Wait for a stop; reopen the tunnel each time it drops (`delays(attempt)` apart)."""
        while not until.expired():
            assert self.proc is not None
            wait_exit(self.proc, until, [stop_fd])
            if readable(stop_fd) or until.expired():
                return
            if self.proc.poll() is not None:
                dropped_at = time.monotonic()
                if _stop_follows(stop_fd):
                    return  # ended by the run's stop, not dropped
                self._reopen(stop_fd, until, delays, dropped_at)
                if self.proc is None:
                    return

    def _reopen(self, stop_fd: int, until: Deadline, delays: Callable[[int], float], dropped_at: float) -> None:
        assert self.proc is not None
        code = self.proc.returncode
        self.drops += 1
        self.log.warning("tunnel_dropped", local_port=self.port, exit_code=code, drops=self.drops, stderr=self.close())
        attempt = 0
        while not until.expired():
            if self.open(until, stop_fd):
                self.log.info("tunnel_restored", local_port=self.port, down_s=round(time.monotonic() - dropped_at, 3),
                              attempts=attempt + 1)  # fmt: skip
                return
            attempt += 1
            if readable(stop_fd, until.cap(delays(attempt))):
                return


def _stop_follows(stop_fd: int) -> bool:
    """Whether the forward's exit is the run's stop: a stop readable now or within STOP_SETTLE_S.

    The supervisor TERMs this child's group, then the forward (a descendant in a session of its
    own), in one escalation. When this child gets no CPU until the forward has exited, its select()
    wakes to find the forward's pidfd ready and returns it; the signal reaches the process only on
    that return, and Python runs our handler (which writes `stop_fd`) after select() has answered
    without it. Seen under load as a `tunnel_dropped` (exit 0) and a reopened tunnel during the
    run's cleanup (one run in about 30 of tests/iris/test_iris_tunnel.py on a loaded machine).
    """
    if readable(stop_fd, STOP_SETTLE_S):
        return True
    # The handler of a signal delivered during that select has run by now (a call boundary).
    return readable(stop_fd)


def serve(ctx: ChildContext, tunnel: Tunnel, boot: Deadline, started: float, mode: str, **about: str) -> int:
    """A cluster child's life behind a tunnel: open it within `boot`, say how logs are read through it
    (`log_route`, as workers.cluster does), READY with its address, keep it up until a stop, close
    it. `about` (what the child found, e.g. the controller VM) goes into the events and READY alike."""
    try:
        if not tunnel.open(boot, ctx.stop.fd):
            ctx.log.error("controller_unreachable", mode=mode, stderr=tunnel.stderr_tail,
                          waited_s=round(time.monotonic() - started, 3), **about)  # fmt: skip
            return ChildExit.OK if ctx.stop.requested() else ChildExit.ERROR
        with open_controller(dataclasses.replace(ctx.args.target, address=tunnel.address), ctx.deadline) as iris:
            log_route(ctx, iris)
        ctx.log.info("cluster_ready", address=tunnel.address, mode=mode, boot_s=round(time.monotonic() - started, 3),
                     **about)  # fmt: skip
        ctx.channel.send(ClusterReady(tunnel.address, mode, cluster_pid=0, state_dir="", prefix="", **about))
        tunnel.keep_up(ctx.stop.fd, ctx.deadline)
        ctx.channel.send(TunnelDrops(tunnel.drops))
        return ChildExit.OK
    finally:
        tunnel.close()
