"""One run at a time per label prefix: two runs on one prefix would delete each other's VMs.

The lock is an `flock` on a file named after the prefix, in a directory shared by every
run of this user on this host. The kernel drops it when the process dies, however it
dies, so a crashed run never leaves a stale lock behind. Forked children close the
descriptor right after the fork, so only the supervisor holds it.
"""

import fcntl
import os
from pathlib import Path


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
        self.path = (directory or lock_dir()) / f"{prefix}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockHeld(f"another run holds the prefix lock {self.path} (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "PrefixLock":
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
