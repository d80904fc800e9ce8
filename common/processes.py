"""Stopping processes: the one process-group signal and the one escalation.

Escalation is TERM (then CONT) to everything at once, one bounded grace, KILL to what is
left (bottom-up), a bounded wait for the KILLed. Stopping many targets therefore costs
one grace, not one each. The waiting is the caller's: only the process that reaps a
child may wait for it (the supervisor's reaper is the only waiter in the supervisor
process), so `escalate` takes a waiter instead of calling waitpid itself.

CONT follows TERM, as systemd sends it: a stopped process (SIGSTOP, a debugger) keeps
TERM pending, would lose its whole grace and be KILLed without stopping what it started.
"""

import contextlib
import os
import select
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import psutil

from common.deadline import Deadline

KILL_WAIT_S = 1.0

# wait(timeout_s, done, skippable) waits until done() or timeout_s and returns done(). A
# skippable wait may return early (False) because the operator asked to skip the grace (a
# second Ctrl-C); the wait for KILLed processes to go is never skippable.
Waiter = Callable[[float, Callable[[], bool], bool], bool]


@dataclass(frozen=True)
class Escalated:
    grace_expired: bool
    killed: int  # processes of the snapshot that were still alive for the KILL
    survivors: tuple[psutil.Process, ...] = ()  # those of the snapshot still alive after the KILL's wait


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a whole process group; one already gone (or not ours) is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def signal_each(procs: Iterable[psutil.Process], sig: signal.Signals) -> int:
    """Signal each process (psutil checks it is still the same process, not a reused pid)."""
    sent = 0
    for proc in procs:
        try:
            proc.send_signal(sig)
            sent += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sent


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie: a zombie has finished and only awaits its reaper."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def terminate(groups: Iterable[int], procs: Sequence[psutil.Process] = ()) -> None:
    """TERM, then CONT, to every group and process, so that they share one grace."""
    groups = list(groups)
    for sig in (signal.SIGTERM, signal.SIGCONT):
        for pgid in groups:
            signal_group(pgid, sig)
        signal_each(procs, sig)


def escalate(
    groups: Sequence[int],
    snapshot: Sequence[psutil.Process],
    *,
    grace_s: float,
    wait: Waiter,
    gone: Callable[[], bool],
    kill_wait_s: float = KILL_WAIT_S,
) -> Escalated:
    """Stop the process groups `groups` and the processes of `snapshot` (given deepest
    first, so KILL goes bottom-up), until every process of `snapshot` has exited and `gone()`:
    the caller's own test for what only it can see go, the group leaders it reaps.

    Take the snapshot *before* calling: once a parent dies its children are re-parented
    and no longer show up under it, so a later snapshot misses the likeliest leaks.
    Members of `snapshot` inside one of `groups` get the group's signal only.
    """

    def all_gone() -> bool:
        return gone() and not any(alive(p) for p in snapshot)

    in_groups = set(groups)
    outside = [p for p in snapshot if _pgid(p) not in in_groups]
    terminate(groups, outside)
    if wait(grace_s, all_gone, True):
        return Escalated(grace_expired=False, killed=0)
    killed = signal_each([p for p in snapshot if alive(p)], signal.SIGKILL)
    for pgid in groups:
        signal_group(pgid, signal.SIGKILL)
    wait(kill_wait_s, all_gone, False)
    return Escalated(grace_expired=True, killed=killed, survivors=tuple(p for p in snapshot if alive(p)))


@dataclass
class GroupStop:
    """The same escalation for a loop that cannot block: TERM now, KILL once overdue.
    The loop calls `kill_if_due` on each round and reaps on its own schedule."""

    pgid: int
    kill_at: float | None = None

    def term(self, now: float, grace_s: float) -> bool:
        """TERM the group unless a stop is already under way; True if this started one."""
        if self.kill_at is not None:
            return False
        self.kill_at = now + grace_s
        terminate([self.pgid])
        return True

    def kill_if_due(self, now: float) -> None:
        if self.kill_at is not None and now >= self.kill_at:
            signal_group(self.pgid, signal.SIGKILL)


class Reapable(Protocol):
    """A process this one started and reaps by polling: `subprocess.Popen`, or a forked one like it."""

    @property
    def pid(self) -> int: ...
    def poll(self) -> int | None: ...


def wait_exit(procs: Reapable | Sequence[Reapable], until: Deadline, wake_fds: Sequence[int] = ()) -> bool:
    """Wait until one of `procs` exits, one of `wake_fds` is readable (a stop) or `until`; True if
    one exited (and is reaped). Without polling: a pidfd becomes readable when its process exits.

    Only the process that started `procs` may wait for them (`poll` reaps), which is why this
    takes the process and not a bare pid. With no `procs` it waits for `wake_fds` or `until` alone.
    """
    procs = procs if isinstance(procs, Sequence) else [procs]
    if any(proc.poll() is not None for proc in procs):
        return True
    pidfds: list[int] = []
    try:
        for proc in procs:
            try:
                pidfds.append(os.pidfd_open(proc.pid))
            except ProcessLookupError:  # gone already
                return proc.poll() is not None
        select.select([*pidfds, *wake_fds], [], [], until.remaining())
    finally:
        for pidfd in pidfds:
            os.close(pidfd)
    return any(proc.poll() is not None for proc in procs)


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except ProcessLookupError:
        return None
