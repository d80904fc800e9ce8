"""When to reconnect a stream: `common.backoff`'s delays, restarted after a success.

A connection that delivered lines, or stayed up for `reset_after_s`, was a success:
the next failure starts again from `base_s`.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common.backoff import capped_exponential

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
BACKOFF_JITTER = 0.5
BACKOFF_RESET_AFTER_S = 60.0


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
        delay = capped_exponential(self.attempt, self.base_s, self.cap_s, self.jitter, self.rand)
        self.attempt += 1
        return delay
