"""Signals, recorded and never acted on inside a handler.

The handlers do nothing at all: `signal.set_wakeup_fd` makes the interpreter's C-level
handler write each signal's number as one byte to a non-blocking pipe, which the loop
polls with everything else. Reading that pipe *is* the record, in arrival order, and
the loop decides what each signal means. SIGCHLD needs a (no-op) handler too: with the
default disposition the kernel never runs one, so the pipe would never hear of it.
If the pipe is ever full the extra bytes are dropped; that only loses wake-ups that
the loop is already awake for.
"""

import os
import signal
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)


def _record_only(_signum: int, _frame: FrameType | None) -> None:
    pass


class SignalInbox:
    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous: dict[int, object] = {}
        self._previous_wakeup = -1

    @property
    def fd(self) -> int:
        return self._read_fd

    def install(self) -> None:
        self._previous_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for sig in HANDLED:
            self._previous[sig] = signal.signal(sig, _record_only)

    def drain(self) -> list[signal.Signals]:
        received: list[signal.Signals] = []
        while True:
            try:
                data = os.read(self._read_fd, 512)
            except BlockingIOError:
                return received
            if not data:
                return received
            received.extend(signal.Signals(b) for b in data)

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous_wakeup)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        os.close(self._read_fd)
        os.close(self._write_fd)
