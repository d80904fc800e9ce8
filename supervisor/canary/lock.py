"""One daemon per state directory: an flock held for the daemon's whole life.

flock(2) locks belong to the open file description, so the kernel releases the lock
when the daemon dies however it dies (SIGKILL included): no stale lock to clean up.
The file is never deleted: unlinking a lock file lets a second daemon lock a new inode
while the first still holds the old one. The holder's pid is written into the file for
the error message only; the lock itself is the truth. The descriptor is close-on-exec
so a run (or a process it leaks) can never keep the lock alive.
"""

import fcntl
import os
from pathlib import Path

LOCK_NAME = "canary.lock"


class LockHeld(Exception):
    def __init__(self, path: Path, holder_pid: int | None) -> None:
        self.path = path
        self.holder_pid = holder_pid
        holder = f"pid {holder_pid}" if holder_pid else "a process whose pid is not written yet"
        super().__init__(f"another canary daemon ({holder}) holds {path}; one daemon per state directory")


class StateLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise LockHeld(self.path, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
