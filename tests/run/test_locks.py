"""Lock files: one holder at a time, and no pile of stale files."""

import fcntl
import os
from pathlib import Path

import pytest

from common.files import Busy, PidLock, _still_names
from supervisor.lock import LockHeld, PrefixLock


def test_a_prefix_lock_refuses_a_second_holder_and_removes_its_file(tmp_path: Path) -> None:
    first = PrefixLock("ci", tmp_path)
    first.acquire()
    with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
        PrefixLock("ci", tmp_path).acquire()
    first.release()
    assert list(tmp_path.iterdir()) == []
    again = PrefixLock("ci", tmp_path)
    again.acquire()
    again.release()


def test_a_waiter_that_locks_the_deleted_file_notices_and_takes_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = PidLock(path, remove=True)
    holder.acquire()
    waiter_fd = os.open(path, os.O_RDWR)  # the waiter opened it before the holder let go
    holder.release()  # deleted, then unlocked
    fcntl.flock(waiter_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the waiter's lock is on the deleted inode
    assert not _still_names(path, waiter_fd), "so it must not count as holding the lock"
    os.close(waiter_fd)
    lock = PidLock(path, remove=True)
    lock.acquire()
    with pytest.raises(Busy):
        PidLock(path).acquire()
    lock.release()
