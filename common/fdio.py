"""Writing to a file descriptor: the one loop that writes everything; asking whether one is readable.

os.write may write less than it was given (a pipe that is nearly full, a signal during a
write to a regular file), so every caller that must not lose bytes loops until done.
"""

import os
import select


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def readable(fd: int, timeout_s: float = 0.0) -> bool:
    """Whether `fd` is readable now, or becomes so within `timeout_s` (a stop request's pipe)."""
    return fd in select.select([fd], [], [], max(0.0, timeout_s))[0]
