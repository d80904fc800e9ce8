"""Stopping process trees: one escalation, TERM -> bounded grace -> KILL -> reap.

All targets are signalled at once, so stopping 64 children costs one grace, not 64.
The snapshot of descendants is taken *before* any signal: once a parent dies its
children are re-parented and no longer show up under it, so a snapshot taken later
would miss exactly the processes most likely to leak.
"""

import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil

from supervisor import audit

# Waits on the supervisor's loop until `done()` or `timeout_s`; returns done(). When the
# third argument is true it may return early (False) because the operator asked to skip
# the grace (a second Ctrl-C); the wait for KILLed processes to be reaped is never skipped.
Wait = Callable[[float, Callable[[], bool], bool], bool]

KILL_WAIT_S = 1.0


@dataclass(frozen=True)
class StopReport:
    targets: int
    killed: int
    survivors: tuple[audit.Leftover, ...]
    duration_s: float


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal(procs: Sequence[psutil.Process], sig: signal.Signals) -> int:
    sent = 0
    for proc in procs:
        try:
            proc.send_signal(sig)
            sent += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return sent


def escalate(
    groups: Sequence[int],
    snapshot: Sequence[psutil.Process],
    *,
    grace_s: float,
    wait: Wait,
    groups_gone: Callable[[], bool],
    kill_wait_s: float = KILL_WAIT_S,
) -> StopReport:
    """Stop the process groups `groups` (each led by one of our children) and everything
    in `snapshot` (all their descendants, and orphans we adopted), deepest first."""
    started = time.monotonic()

    def all_gone() -> bool:
        return groups_gone() and not any(audit.alive(p) for p in snapshot)

    in_groups = set(groups)
    # Processes outside those groups (a grandchild that called setsid, an adopted orphan)
    # get their TERM directly, at the same time, so they share the one grace. CONT follows
    # TERM, as systemd sends it: a stopped process (SIGSTOP, a debugger) would keep TERM
    # pending, lose its whole grace and be KILLed without stopping what it started.
    outside = [p for p in snapshot if _pgid(p) not in in_groups]
    for sig in (signal.SIGTERM, signal.SIGCONT):
        for pgid in groups:
            _signal_group(pgid, sig)
        _signal(outside, sig)
    killed = 0
    if not wait(grace_s, all_gone, True):
        remaining = [p for p in snapshot if audit.alive(p)]
        killed = _signal(remaining, signal.SIGKILL)
        for pgid in groups:
            _signal_group(pgid, signal.SIGKILL)
        wait(kill_wait_s, all_gone, False)
    survivors = tuple(audit.Leftover.of(p) for p in snapshot if audit.alive(p))
    return StopReport(len(groups), killed, survivors, time.monotonic() - started)


def _pgid(proc: psutil.Process) -> int | None:
    try:
        return os.getpgid(proc.pid)
    except ProcessLookupError:
        return None
