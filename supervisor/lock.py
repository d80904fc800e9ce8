"""One run at a time per label prefix: two runs on one prefix would delete each other's VMs.

The lock file is named after the prefix, in a directory shared by every run of this user
on this host; `common.files.PidLock` holds it (dropped by the kernel however we die).

The directory is private to the user, never a predictable name in /tmp: there another
user could create it first, with a symlink where our lock file goes (we would write a
pid over the symlink's target) or as a 0700 directory of theirs (every run refused).
In order: `$IRIS_SMOKE_LOCK_DIR` (the systemd units set it), `$XDG_RUNTIME_DIR/iris-smoke`
(per-user tmpfs), `$XDG_CACHE_HOME/iris-smoke/locks` (default `~/.cache`). Whichever
it is must be ours and private (`common.files.private_dir`).
"""

import os
from pathlib import Path

from common.errors import LockHeld, UsageError
from common.files import Busy, PidLock, UnsafePath, private_dir


def lock_dir() -> Path:
    if configured := os.environ.get("IRIS_SMOKE_LOCK_DIR"):
        return Path(configured)
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(runtime) / "iris-smoke"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "iris-smoke" / "locks"


class PrefixLock:
    def __init__(self, prefix: str, directory: Path | None = None) -> None:
        self._lock = PidLock((directory or lock_dir()) / f"{prefix}.lock", mode=0o600, remove=True)

    def acquire(self) -> None:
        try:
            private_dir(self._lock.path.parent)
            self._lock.acquire()
        except Busy:
            rule = "one run per label prefix (the prefix lock)"
            raise LockHeld(self._lock.path, self._lock.holder(), "run", rule) from None
        except UnsafePath as exc:
            raise UsageError(f"lock directory: {exc} (or set IRIS_SMOKE_LOCK_DIR to a private directory)") from None
        except OSError as exc:
            raise UsageError(f"lock directory: cannot use {self._lock.path}: {exc.strerror}") from None

    def release(self) -> None:
        self._lock.release()
