"""Capped exponential backoff with jitter: the one rule for every retry and restart.

Jitter spreads retries that failed together (hundreds of streams losing their VMs at one
preemption, children dying at once) so they do not return in lockstep. It only ever
shortens the delay, so the cap is a true maximum and jitter 0 gives the bare sequence.
"""

import random
from collections.abc import Callable

_MAX_EXPONENT = 62  # 2**62 is already far beyond any cap; avoids float overflow


def capped_exponential(
    attempt: int, base_s: float, cap_s: float, jitter: float = 0.0, rand: Callable[[], float] = random.random
) -> float:
    """The delay before retry `attempt` (0-based): min(cap, base * 2^attempt), less up to `jitter` of it."""
    ceiling = min(cap_s, base_s * 2.0 ** min(max(0, attempt), _MAX_EXPONENT))
    return max(0.0, ceiling * (1.0 - jitter * rand()))
