"""A stop request that signal handlers can set safely, and select loops can wait on.

Why a pipe and not threading.Event: a Python signal handler runs in the main thread between
two bytecodes, possibly while that same thread holds the Event's internal (non-reentrant)
lock inside `wait()`; calling `set()` from the handler would then deadlock. Writing one byte
to a non-blocking pipe cannot, and the pipe stays readable from then on, so every select()
that watches `fd` wakes at once, now or later.
"""

import contextlib
import os
import select
import signal
from collections.abc import Callable, Mapping
from types import FrameType, MappingProxyType

# A process run by hand or by a supervisor of its own: either signal stops it, named as such.
TERM_OR_INT: Mapping[signal.Signals, str] = MappingProxyType({signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"})


class StopRequest:
    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.reason: str | None = None

    @property
    def fd(self) -> int:
        return self._read_fd

    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str) -> None:
        """The first reason stays; every request wakes the waiters."""
        if self.reason is None:
            self.reason = reason
        with contextlib.suppress(BlockingIOError):  # a full pipe wakes a waiter anyway
            os.write(self._write_fd, b"x")

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s`; True if a stop was requested."""
        if self.reason is None:
            select.select([self._read_fd], [], [], max(0.0, timeout_s))
        return self.reason is not None

    def on_signals(self, reasons: Mapping[signal.Signals, str], then: Callable[[], None] | None = None) -> None:
        """Each signal of `reasons` requests a stop with its reason, then runs `then` (inside the
        handler). From the first one on SIGTERM is ignored: the stop is under way and a second TERM
        (a supervisor and its child both stopping us) adds nothing, but once Python finalizes it
        resets our handler to the default, and a TERM then kills us mid-exit. KILL remains."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self.request(reasons[signal.Signals(signum)])
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if then is not None:
                then()

        for sig in reasons:
            signal.signal(sig, on_signal)
