"""One run at a time per label prefix: two runs on one prefix would delete each other's VMs.

The lock file is named after the prefix, in a directory shared by every run of this user
on this host; `common.files.PidLock` holds it (dropped by the kernel however we die).
"""

import os
from pathlib import Path

from common.files import Busy, PidLock


class LockHeld(RuntimeError):
    pass


def lock_dir() -> Path:
    configured = os.environ.get("IRIS_SMOKE_LOCK_DIR")
    if configured:
        return Path(configured)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "iris-smoke" if runtime else Path(f"/tmp/iris-smoke-{os.getuid()}")


class PrefixLock:
    def __init__(self, prefix: str, directory: Path | None = None) -> None:
        self._lock = PidLock((directory or lock_dir()) / f"{prefix}.lock", mode=0o600, remove=True)

    def acquire(self) -> None:
        self._lock.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Busy:
            holder = self._lock.holder() or "unknown"
            raise LockHeld(f"another run holds the prefix lock {self._lock.path} (pid {holder})") from None

    def release(self) -> None:
        self._lock.release()
