"""Stopping the supervisor's process trees with the one escalation (`common.processes`).

The supervisor's loop is the waiter, so its reaper stays the only one that reaps.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil

from common import processes
from supervisor import audit

Wait = processes.Waiter
KILL_WAIT_S = processes.KILL_WAIT_S


@dataclass(frozen=True)
class StopReport:
    targets: int
    killed: int
    survivors: tuple[audit.Leftover, ...]
    duration_s: float


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
        return groups_gone() and not any(processes.alive(p) for p in snapshot)

    done = processes.escalate(groups, snapshot, grace_s=grace_s, wait=wait, gone=all_gone, kill_wait_s=kill_wait_s)
    survivors = tuple(audit.Leftover.of(p) for p in snapshot if processes.alive(p))
    return StopReport(len(groups), done.killed, survivors, time.monotonic() - started)
