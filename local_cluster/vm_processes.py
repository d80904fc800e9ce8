"""The local "cloud": each VM is a `python -m local_cluster.vmhost` child process.

Started with subprocess (fork+exec), never a bare fork: this process holds gRPC objects
and threads, and a forked copy of them is unsafe. Each VM host gets a session of its own
(a Ctrl-C on the cluster's terminal must not reach it; the cluster stops it) and asks
for a parent-death signal itself. That signal fires when the *thread* that forked it
exits, so every call here must come from the one long-lived control-loop thread, which
also runs the final `stop_all`.

This class is the only reaper of VM host processes: `poll` reaps (waitpid on each
known pid) and escalates overdue stops from SIGTERM to SIGKILL without blocking.
"""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import processes
from common.processes import GroupStop
from local_cluster.autoscaler import StartVm
from local_cluster.config import ClusterSettings
from local_cluster.environment import minimal_env

VM_STOP_GRACE_S = 2.0
# The directory that holds the local_cluster package, so that `-m local_cluster.vmhost`
# resolves whatever the cluster's working directory is.
IMPORT_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass
class VmProcess:
    name: str
    popen: "subprocess.Popen[bytes]"
    stopping: GroupStop  # started by stop(): SIGKILL the group if still alive when due


def child_env() -> dict[str, str]:
    """A VM host's (and its tasks') environment: the allowlist, plus this package's import root."""
    env = minimal_env(os.environ)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = f"{IMPORT_ROOT}{os.pathsep}{path}" if path else IMPORT_ROOT
    return env


class VmProcesses:
    def __init__(
        self, state_dir: Path, settings: ClusterSettings, address: Callable[[], str],
        stop_grace_s: float = VM_STOP_GRACE_S, clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._state_dir = state_dir
        self._settings = settings
        self._address = address
        self._grace_s = stop_grace_s
        self._clock = clock
        self._live: dict[str, VmProcess] = {}
        self._never_started: list[str] = []

    def start(self, cmd: StartVm) -> int:
        argv = [
            sys.executable, "-m", "local_cluster.vmhost",
            "--controller", self._address(),
            "--vm", cmd.vm_name,
            "--state-dir", str(self._state_dir),
            "--parent-pid", str(os.getpid()),
            "--boot-delay", str(cmd.boot_delay_s),
            "--heartbeat-interval", str(self._settings.heartbeat_interval_s),
            "--crash-after", str(cmd.crash_after_s),
        ]  # fmt: skip
        if cmd.fail_boot:
            argv.append("--fail-boot")
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=child_env(),
                                 start_new_session=True)  # fmt: skip
        self._live[cmd.vm_name] = VmProcess(cmd.vm_name, popen, GroupStop(popen.pid))
        return popen.pid

    def stop(self, name: str) -> None:
        proc = self._live.get(name)
        if proc is None:
            self._never_started.append(name)
            return
        proc.stopping.term(self._clock(), self._grace_s)

    def poll(self) -> list[tuple[str, int]]:
        """Reap VM hosts that exited; returns (name, exit code), a signal as 128 + its number."""
        exited = [(name, 0) for name in self._never_started]
        self._never_started.clear()
        now = self._clock()
        for name, proc in list(self._live.items()):
            code = proc.popen.poll()
            if code is None:
                proc.stopping.kill_if_due(now)
            else:
                del self._live[name]
                exited.append((name, code if code >= 0 else 128 - code))
        return exited

    def stop_all(self, grace_s: float) -> list[tuple[str, int]]:
        """TERM every VM host, wait up to `grace_s` in total, KILL the rest; reaps them all."""
        groups = [proc.popen.pid for proc in self._live.values()]
        processes.escalate(groups, [], grace_s=grace_s, wait=self._wait_all, gone=self._all_exited)
        return self.poll()

    def _all_exited(self) -> bool:
        return all(proc.popen.poll() is not None for proc in self._live.values())

    def _wait_all(self, timeout_s: float, done: Callable[[], bool], _skippable: bool) -> bool:
        """Wait (as their one reaper) until every VM host has exited or `timeout_s` passed."""
        deadline = self._clock() + timeout_s
        for proc in self._live.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.0, deadline - self._clock()))
        return done()
