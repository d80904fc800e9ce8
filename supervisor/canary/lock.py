"""One daemon per state directory: an flock held for the daemon's whole life.

flock(2) locks belong to the open file description, so the kernel releases the lock
when the daemon dies however it dies (SIGKILL included): no stale lock to clean up.
The file is never deleted: unlinking a lock file lets a second daemon lock a new inode
while the first still holds the old one. The holder's pid is written into the file for
the error message only; the lock itself is the truth. The descriptor is close-on-exec
so a run (or a process it leaks) can never keep the lock alive. The state directory must
be ours and not world-writable, and the lock file a plain file of ours, never a symlink
(`common.files`): `UnsafePath` otherwise.
"""

from pathlib import Path

from common.errors import LockHeld
from common.files import Busy, PidLock, owned_dir

LOCK_NAME = "canary.lock"


class StateLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = PidLock(path)

    def acquire(self) -> None:
        owned_dir(self.path.parent)
        try:
            self._lock.acquire()
        except Busy:
            raise LockHeld(self.path, self._lock.holder(), "canary daemon", "one daemon per state directory") from None

    def release(self) -> None:
        self._lock.release()  # closing the last descriptor releases the flock
