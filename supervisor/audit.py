"""Finding processes: a run's descendants before a stop, and its leftovers after one.

psutil identifies a process by pid *and* creation time, so a `Process` taken in a
snapshot never signals an unrelated process that reused the pid later.
"""

import contextlib
import os
import signal
from dataclasses import dataclass
from typing import Any

import psutil

from common import env
from common.processes import alive, signal_each
from supervisor.run_result import LeakedProcess, Processes


@dataclass(frozen=True)
class Leftover:
    pid: int
    name: str
    cmdline: str
    status: str

    @classmethod
    def of(cls, proc: psutil.Process) -> "Leftover":
        try:
            with proc.oneshot():
                return cls(proc.pid, proc.name(), " ".join(proc.cmdline())[:200], proc.status())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return cls(proc.pid, "?", "?", "gone")


def is_kept(proc: psutil.Process) -> bool:
    try:
        return env.KEPT_CLUSTER in proc.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def kept_alive(pid: int) -> bool:
    """Whether `pid` still runs and is the kind marked to outlive the run (a pid reused since is not)."""
    try:
        return pid > 0 and is_kept(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False


def descendants() -> list[psutil.Process]:
    """Every live descendant of this process, deepest first (so KILL goes bottom-up),
    except those marked to outlive the run (a cluster kept with `--keep`)."""
    try:
        procs = [p for p in psutil.Process().children(recursive=True) if not is_kept(p)]
    except psutil.NoSuchProcess:
        return []
    depth: dict[int, int] = {os.getpid(): 0}
    ordered = []
    for proc in procs:  # psutil lists parents before their children
        try:
            depth[proc.pid] = depth.get(proc.ppid(), 0) + 1
            ordered.append(proc)
        except psutil.NoSuchProcess:
            continue
    return sorted(ordered, key=lambda p: -depth.get(p.pid, 0))


def tagged(run_id: str, instance: str | None = None) -> list[psutil.Process]:
    """Processes other than this one whose environment carries the run tag (and, when given,
    the run's instance: another live run may have been given the same run id).

    A forked child sets the tag with putenv, which /proc/PID/environ does not show
    (it shows the environment the program was exec'd with), so this finds what our
    children exec'd, and their descendants, wherever they were re-parented.
    """
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            environ = proc.environ()
            if environ.get(env.RUN_TAG) == run_id and instance in (None, environ.get(env.RUN_INSTANCE)):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_tagged(run_id: str, log: Any, instance: str | None = None, **fields: Any) -> dict[psutil.Process, Leftover]:
    """KILL every live process carrying the run's tag, logging each as a leak; return them,
    described before the kill (afterwards there would be nothing left to describe).

    Waiting for them to go is the caller's: only its own loop may reap what it adopted.
    """
    leftovers = {p: Leftover.of(p) for p in tagged(run_id, instance) if alive(p)}
    for proc, described in leftovers.items():
        log.error("process_leaked", child_pid=proc.pid, process=described.cmdline, **fields)
    signal_each(leftovers, signal.SIGKILL)
    return leftovers


def zombie_children() -> list[psutil.Process]:
    """Our children that have exited and wait for us to reap them. One reaped between the listing
    and its look (by another thread of a test process) is passed over, not the whole list."""
    found = []
    for proc in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.status() == psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


@dataclass(frozen=True)
class AuditReport:
    spawned: int
    reaped: int
    orphans_reaped: int
    killed_at_stop: int
    leaked: tuple[Leftover, ...]
    zombies: int

    def processes(self, grpc_imported: bool) -> Processes:
        """results.json's `processes`; `grpc_imported`: whether the supervisor ever loaded grpc."""
        leaked = tuple(LeakedProcess(p.pid, p.name, p.cmdline, p.status) for p in self.leaked)
        return Processes(self.spawned, self.reaped, self.orphans_reaped, self.killed_at_stop, len(self.leaked),
                         leaked, self.zombies, grpc_imported)  # fmt: skip
