"""Files with one writer and files replaced whole: the two ways this project writes to disk.

- `write_atomically`: a temporary file, fsync, rename. A reader (node_exporter, a CI job,
  the next run) sees the old content or the new, never half of it.
- `open_exclusive`: open, then `flock(LOCK_EX | LOCK_NB)`. A second writer of the same
  file fails at once instead of interleaving with the first. The kernel drops the lock
  when the descriptor's last copy is closed, so a crashed writer leaves no stale lock;
  forked children close every inherited descriptor at once, so only the opener holds it.
- `PidLock`: an exclusive lock file that also names its holder, for "one run per
  prefix" and "one daemon per state directory".
"""

import fcntl
import os
from pathlib import Path


class Busy(OSError):
    """Another process holds the file's exclusive lock."""


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        # A full disk must not also leave half a file behind: the old content stays.
        tmp.unlink(missing_ok=True)
        raise


def open_exclusive(path: Path, flags: int, mode: int = 0o644) -> int:
    """Open `path` (O_CREAT | O_CLOEXEC added) and hold its exclusive lock; raise Busy if taken."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(f"{path} is held by another process") from None
    return fd


class PidLock:
    """An exclusive lock file naming its holder.

    With `remove=True` the file is deleted on release, so one-off names (a lock per label
    prefix) do not pile up. That is safe only because `acquire` checks, after locking,
    that the path still names the inode it locked: a process that opened the file just
    before the holder deleted it would otherwise hold a lock nobody else can see.
    """

    def __init__(self, path: Path, mode: int = 0o644, remove: bool = False) -> None:
        self.path = path
        self.mode = mode
        self.remove = remove
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write our pid into the file; raise Busy naming the holder's."""
        while True:
            try:
                fd = open_exclusive(self.path, os.O_RDWR, self.mode)
            except Busy:
                raise Busy(f"{self.path} is held by pid {self.holder() or 'unknown'}") from None
            if _still_names(self.path, fd):
                break
            os.close(fd)  # we locked a file its holder had just deleted: try the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def holder(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            if self.remove:
                # Deleted while still locked, so a waiter that opened it retries on a new file.
                self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def _still_names(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
