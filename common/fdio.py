"""Writing to a file descriptor: the one loop that writes everything.

os.write may write less than it was given (a pipe that is nearly full, a signal during a
write to a regular file), so every caller that must not lose bytes loops until done.
"""

import os


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
