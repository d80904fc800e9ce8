"""A stop request that signal handlers can set safely, and a main loop can wait on.

Why not threading.Event: a Python signal handler runs in the main thread between two
bytecodes, possibly while that same thread holds the Event's internal (non-reentrant)
lock inside `wait()`; calling `set()` from the handler would then deadlock. Writing one
byte to a non-blocking pipe cannot, and select() on the pipe is the bounded wait.
"""

import contextlib
import os
import select
import signal
from types import FrameType


class StopSignal:
    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.reason: str | None = None

    def install(self, *signals: signal.Signals) -> None:
        for sig in signals:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.set(signal.Signals(signum).name)
        if signum == signal.SIGTERM:
            # The stop is under way and a second TERM (a supervisor and its child both stopping
            # us) adds nothing; but once Python finalizes it resets this handler to the default,
            # and a TERM then kills us mid-exit (-15, not 0). KILL remains the escalation.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        with contextlib.suppress(BlockingIOError):  # a full pipe wakes a waiter anyway
            os.write(self._write_fd, b"x")

    def is_set(self) -> bool:
        return self.reason is not None

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s`; True if a stop was requested."""
        if self.reason is None:
            select.select([self._read_fd], [], [], max(0.0, timeout_s))
        return self.reason is not None
