"""Live progress on a terminal: one line, redrawn at most once a second.

Only when stdout is a TTY (on journald or a pipe, the JSON events are the progress).
The line is drawn with a carriage return and an erase-to-end-of-line, so warnings that
the processes print in between simply push it down.
"""

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common import logs
from common.deadline import Deadline

REDRAW_S = 1.0


@dataclass
class Progress:
    deadline: Deadline
    describe: Callable[[], str]
    enabled: bool = field(default_factory=lambda: logs.stdout_mode() is logs.StdoutMode.QUIET_CONSOLE)
    started: float = field(default_factory=time.monotonic)
    _next: float = 0.0

    def tick(self) -> float | None:
        """Redraw if due; return the seconds until the next redraw (None when disabled)."""
        if not self.enabled:
            return None
        now = time.monotonic()
        if now >= self._next:
            total = now - self.started + self.deadline.remaining()
            line = f"[{now - self.started:6.1f}s / {total:.0f}s] {self.describe()}"
            sys.stdout.write("\r\x1b[K" + line[:200])
            sys.stdout.flush()
            self._next = now + REDRAW_S
        return max(0.0, self._next - now)

    def finish(self, final: str) -> None:
        if self.enabled:
            sys.stdout.write("\r\x1b[K" + final + "\n")
            sys.stdout.flush()
