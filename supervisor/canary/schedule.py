"""Slot arithmetic: runs start on a fixed grid, `first + k * interval`.

The next start is the previous *slot* plus the interval (not the previous finish, which
would drift by every run's length). A run that overruns its slot makes the next ones
pass; those are skipped, never run late and back to back, so the canary's load on the
cluster stays what the interval promises. Pure functions of the clock's readings.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    at: float  # monotonic time the run should start
    skipped: int  # grid slots that passed while the previous run was still going


def next_slot(previous_at: float, interval_s: float, now: float) -> Slot:
    """The first slot after `previous_at` that is not in the past at `now`."""
    due = previous_at + interval_s
    if now <= due:
        return Slot(due, 0)
    missed = math.ceil((now - due) / interval_s)
    return Slot(due + missed * interval_s, missed)


def seconds_until(at: float, now: float) -> float:
    return max(0.0, at - now)
