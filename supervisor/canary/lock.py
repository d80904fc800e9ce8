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

import os
from pathlib import Path

from common.errors import ConfigError, LockHeld
from common.files import Busy, PidLock, UnsafePath, check_lock_file, owned_dir

LOCK_NAME = "canary.lock"


def check_state_dir(state_dir: Path, create: bool) -> None:
    """The state directory's checks, one function for the daemon's start (`create`: made if
    missing) and `--check-config` (nothing created: a missing directory must be one the
    daemon could create). The directory ours and not writable by all, the lock file (if
    there) a plain file of ours. ConfigError naming `--state-dir` otherwise."""
    try:
        if not os.path.lexists(state_dir):
            if not create:
                _creatable(state_dir)
                return
            state_dir.mkdir(parents=True)
        owned_dir(state_dir)
        check_lock_file(state_dir / LOCK_NAME)
    except UnsafePath as exc:
        raise ConfigError(f"--state-dir: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"--state-dir: cannot use {state_dir}: {exc.strerror}") from None


def _creatable(path: Path) -> None:
    parent = next(p for p in path.absolute().parents if os.path.lexists(p))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--state-dir: cannot create {path}: {parent} is not a directory we can write")


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
