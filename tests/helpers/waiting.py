"""Bounded waits on a condition: the only way tests wait (no bare sleeps)."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.02


class WaitTimeout(AssertionError):
    pass


def wait_for(condition: Callable[[], T], timeout_s: float, what: str) -> T:
    """Return the first truthy value of `condition()`, or fail after `timeout_s` naming `what`."""
    end = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= end:
            raise WaitTimeout(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(POLL_S)
