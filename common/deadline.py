"""One absolute deadline per run, on the monotonic clock.

CLOCK_MONOTONIC is system-wide on Linux, so the same float means the same instant in
the supervisor and in every forked child. Waits ask for `remaining()`, never sleep fixed
amounts; wall-clock time is only for timestamps.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass(frozen=True)
class Deadline:
    at: float
    clock: Clock = field(default=time.monotonic, compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> "Deadline":
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        return max(0.0, self.at - self.clock())

    def expired(self) -> bool:
        return self.clock() >= self.at

    def within(self, budget_s: float) -> "Deadline":
        """A budget inside this deadline: `budget_s` from now, or this deadline if it comes first."""
        return Deadline(min(self.clock() + budget_s, self.at), self.clock)

    def cap(self, seconds: float) -> float:
        """The smaller of `seconds` and the time left: the timeout for one bounded wait.

        Never negative: `seconds` is often an end minus now, and the end can pass between a
        loop's check of it and this call; select() and poll() refuse a negative timeout."""
        return max(0.0, min(seconds, self.remaining()))

    def as_unix_time(self) -> float:
        return time.time() + (self.at - self.clock())
