"""Capped exponential backoff with jitter, for reconnecting a stream.

Jitter spreads the reconnects of hundreds of streams that all lost their VM at the same
moment (a preemption, a network blip) so they do not hit sshd or gcloud in lockstep.
A connection that delivered lines, or stayed up for `reset_after_s`, was a success:
the next failure starts again from `base_s`.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
BACKOFF_JITTER = 0.5
BACKOFF_RESET_AFTER_S = 60.0
_MAX_EXPONENT = 62  # 2**62 is already far beyond any cap; avoids float overflow


def backoff_delay(attempt: int, base_s: float, cap_s: float, jitter: float, rand: Callable[[], float]) -> float:
    """The delay before retry `attempt` (0-based): min(cap, base * 2^attempt), minus up to `jitter` of it."""
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt, _MAX_EXPONENT))
    return ceiling * (1.0 - jitter * rand())


@dataclass
class Backoff:
    base_s: float = BACKOFF_BASE_S
    cap_s: float = BACKOFF_CAP_S
    jitter: float = BACKOFF_JITTER
    reset_after_s: float = BACKOFF_RESET_AFTER_S
    rand: Callable[[], float] = field(default=random.random, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    attempt: int = 0

    def next_delay(self, connected_at: float, delivered_lines: bool) -> float:
        if delivered_lines or self.clock() - connected_at >= self.reset_after_s:
            self.attempt = 0
        delay = backoff_delay(self.attempt, self.base_s, self.cap_s, self.jitter, self.rand)
        self.attempt += 1
        return delay
