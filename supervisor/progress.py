"""Live progress on a terminal: one line, redrawn at most once a second.

Only when stdout is a TTY (on journald or a pipe, the JSON events are the progress).
The line is drawn with a carriage return and an erase-to-end-of-line, and it is cut to
one column less than the terminal's width (asked again at each redraw, so a resize is
followed): a line that wrapped would leave its first rows behind at every redraw, since
`\\r` only returns to the start of the last row. Writing the last column is avoided too,
because terminals defer the wrap there and some then wrap on the next character.
Warnings erase the line before they are printed (common/logs.py), so they start at the
left margin and the next redraw puts the progress line back under them.
"""

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common import logs
from common.deadline import Deadline

REDRAW_S = 1.0
ERASE_LINE = "\r\x1b[K"
ELLIPSIS = "…"


def fit(line: str, columns: int) -> str:
    """`line` cut to fit in `columns - 1` cells, ending in an ellipsis when cut."""
    room = max(columns - 1, 1)
    return line if len(line) <= room else line[: room - 1] + ELLIPSIS


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
            sys.stdout.write(ERASE_LINE + fit(line, shutil.get_terminal_size().columns))
            sys.stdout.flush()
            self._next = now + REDRAW_S
        return max(0.0, self._next - now)

    def finish(self) -> None:
        """Erase the line: the verdict line (stderr) takes its place."""
        if self.enabled:
            sys.stdout.write(ERASE_LINE)
            sys.stdout.flush()
