"""The loop core that the run's supervisor and the canary daemon share.

One `poll()` over a set of fds, each with its handler; the signal inbox is one of them,
and what it received (SIGCHLD aside: it only wakes us) goes to the owner's handler.
After every wake, whatever woke it, the core reaps (`reaper.reap_exited`) and hands the
exits back: it is the only caller of the reaper, so a process that runs one core has
exactly one reaper. What the exits mean, and what else happens on a wake (deadlines,
restarts, limits), is the owner's business.
"""

import select
import signal
from collections.abc import Callable

from supervisor.reaper import Exit, reap_exited
from supervisor.signals import SignalInbox

FdHandler = Callable[[int], None]
SignalHandler = Callable[[list[signal.Signals]], None]


def timeout_ms(timeout_s: float) -> int:
    """`poll()`'s timeout for a wait in seconds, rounded up: a 0.4 ms wait must not become
    a 0 ms poll, which would spin until the moment it was waiting for."""
    return max(0, int(timeout_s * 1000 + 0.999))


class Loop:
    def __init__(self, on_signals: SignalHandler) -> None:
        self._on_signals = on_signals
        self._poll = select.poll()
        self._handlers: dict[int, FdHandler] = {}
        self._inbox = SignalInbox()

    def open(self) -> None:
        """Start recording signals; from here on they are read on the next wake."""
        self._inbox.install()
        self.register(self._inbox.fd, self._drain_signals)

    def close(self) -> None:
        self.unregister(self._inbox.fd)
        self._inbox.close()

    def register(self, fd: int, handler: FdHandler) -> None:
        self._handlers[fd] = handler
        self._poll.register(fd, select.POLLIN)

    def unregister(self, fd: int) -> None:
        del self._handlers[fd]
        self._poll.unregister(fd)

    def poll_once(self, timeout_s: float) -> list[Exit]:
        """Wait up to `timeout_s` for an fd or a signal, run the handlers of what is ready,
        then reap: the exits of every child that ended, ours or adopted."""
        for fd, _events in self._poll.poll(timeout_ms(timeout_s)):
            handler = self._handlers.get(fd)  # a handler before it may have closed this fd
            if handler is not None:
                handler(fd)
        return self.reap()

    def reap(self) -> list[Exit]:
        return reap_exited()

    def _drain_signals(self, _fd: int) -> None:
        received: list[signal.Signals] = [s for s in self._inbox.drain() if s is not signal.SIGCHLD]
        if received:
            self._on_signals(received)
