"""Files with one writer and files replaced whole: the two ways this project writes to disk.

- `write_atomically`: a temporary file, fsync, rename. A reader (node_exporter, a CI job,
  the next run) sees the old content or the new, never half of it. The temporary file is
  created under a random name with O_EXCL|O_NOFOLLOW: in a directory someone else can write
  (a copied CI artefact read by `iris-smoke report`) a predictable name could be a planted
  symlink, and O_CREAT|O_TRUNC alone would follow it and overwrite its target.
- `open_exclusive`: open, then `flock(LOCK_EX | LOCK_NB)`. A second writer of the same
  file fails at once instead of interleaving with the first. The kernel drops the lock
  when the descriptor's last copy is closed, so a crashed writer leaves no stale lock;
  forked children close every inherited descriptor at once, so only the opener holds it.
- `PidLock`: an exclusive lock file that also names its holder, for "one run per
  prefix" and "one daemon per state directory". It truncates and writes the file it opens,
  so it never follows a symlink and refuses a file that is not our own plain file:
  otherwise whoever could plant the lock path could make us overwrite any file we can write.
"""

import errno
import fcntl
import os
import secrets
import stat
from pathlib import Path

from common.fdio import write_all

# Draws of a random temporary name before giving up (each has 64 bits: a clash means someone is guessing).
TEMPORARY_ATTEMPTS = 8


class Busy(OSError):
    """Another process holds the file's exclusive lock."""


class UnsafePath(OSError):
    """A lock file or directory that another user planted, owns or can write; the message says the fix."""


def private_dir(path: Path) -> Path:
    """`path` as a directory only we can use: created 0700, else checked to be ours and made 0700.

    A predictable name (a lock directory) can be created first by another user: then it is
    a symlink (lstat says so, O_NOFOLLOW refuses it) or a directory of theirs (st_uid).
    Either is refused, never used. Our own directory with group/other access is fixed.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(f"{path}: is a symlink or not a directory; remove it") from None
        raise
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise UnsafePath(f"{path}: owned by uid {st.st_uid}, not by us (uid {os.geteuid()}); remove it")
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


def owned_dir(path: Path) -> Path:
    """An existing directory of ours that no other user may write (a configured state directory)."""
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{path}: not a directory; name a directory")
    if st.st_uid != os.geteuid():
        raise UnsafePath(f"{path}: must be a directory owned by uid {os.geteuid()}, found uid {st.st_uid}")
    if st.st_mode & stat.S_IWOTH:
        raise UnsafePath(f"{path}: writable by every user; chmod o-w {path}")
    return path


def _create_temporary(path: Path) -> tuple[Path, int]:
    """A new file beside `path`, never an existing one (or what a symlink there points at)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(TEMPORARY_ATTEMPTS):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o644)
        except FileExistsError:
            continue  # 64 random bits taken: someone is guessing; draw again
    raise FileExistsError(errno.EEXIST, f"no free temporary name beside {path} in {TEMPORARY_ATTEMPTS} tries")


def write_atomically(path: Path, data: bytes) -> None:
    tmp, fd = _create_temporary(path)
    try:
        try:
            write_all(fd, data)
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


def open_sole_writer(path: Path, flags: int, busy: type[Exception], why: str) -> int:
    """Create `path`'s directory and open `path` as its one writer (open_exclusive); raise
    `busy("<path> <why>")` when another process writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return open_exclusive(path, flags)
    except Busy:
        raise busy(f"{path} {why}") from None


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
            fd = self._open()
            if _still_names(self.path, fd):
                break
            os.close(fd)  # we locked a file its holder had just deleted: try the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def _open(self) -> int:
        try:
            fd = open_exclusive(self.path, os.O_RDWR | os.O_NOFOLLOW, self.mode)
        except Busy:
            raise Busy(f"{self.path} is held by pid {self.holder() or 'unknown'}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(f"{self.path}: is a symlink; remove it") from None
            raise
        try:
            _plain_file_of_ours(self.path, os.fstat(fd))
        except UnsafePath:
            os.close(fd)
            raise
        return fd

    def holder(self) -> int | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            if self.remove:
                # Deleted while still locked, so a waiter that opened it retries on a new file.
                self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def check_lock_file(path: Path) -> None:
    """What `PidLock` would refuse at `path`, found without opening it (a check that creates
    nothing, such as `--check-config`): a symlink, a hard link, not a plain file of ours.
    A missing file is fine: the lock creates it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{path}: is a symlink; remove it")
    _plain_file_of_ours(path, st)


def _plain_file_of_ours(path: Path, st: os.stat_result) -> None:
    # A hard link to someone's file would be ours to truncate if we are root. (0 links:
    # its holder just deleted it, and acquire's retry takes care of that.)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink > 1:
        raise UnsafePath(f"{path}: not a plain file of ours (uid {st.st_uid}, {st.st_nlink} links); remove it")


def _still_names(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False
