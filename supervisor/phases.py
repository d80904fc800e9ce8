"""Phases of a run, each logged as a pair of events with its duration."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def phase(log: Any, name: str) -> Iterator[None]:
    started = time.monotonic()
    log.info("phase_started", phase=name)
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        log.info("phase_finished", phase=name, outcome=outcome, duration_s=round(time.monotonic() - started, 3))
