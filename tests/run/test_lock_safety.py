"""Locks another user cannot turn against us: no symlink followed, no directory of theirs used.

As root, "another user" is simulated by chown to nobody: root could write into that
directory, which is exactly why the checks must look at ownership, not at access.
"""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from common.files import UnsafePath
from supervisor.canary.lock import StateLock
from supervisor.cli import UsageError
from supervisor.lock import PrefixLock, lock_dir

NOBODY = 65534
SECRET = "not a pid\n"


def _victim(tmp_path: Path) -> Path:
    target = tmp_path / "victim.conf"
    target.write_text(SECRET)
    return target


def test_a_symlinked_prefix_lock_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o700)
    target = _victim(tmp_path)
    (locks / "ci.lock").symlink_to(target)
    with pytest.raises(UsageError, match="symlink"):
        PrefixLock("ci", locks).acquire()
    assert target.read_text() == SECRET


def test_a_lock_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    locks = tmp_path / "theirs"
    locks.mkdir(mode=0o700)
    os.chown(locks, NOBODY, NOBODY)
    with pytest.raises(UsageError, match=f"owned by uid {NOBODY}"):
        PrefixLock("ci", locks).acquire()
    assert list(locks.iterdir()) == []


def test_a_symlinked_lock_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    (tmp_path / "locks").symlink_to(real)
    with pytest.raises(UsageError, match="symlink"):
        PrefixLock("ci", tmp_path / "locks").acquire()
    assert list(real.iterdir()) == []


def test_our_own_lock_directory_open_to_others_is_made_private(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    locks.mkdir()
    locks.chmod(0o777)
    lock = PrefixLock("ci", locks)
    lock.acquire()
    try:
        assert stat.S_IMODE(locks.stat().st_mode) == 0o700
    finally:
        lock.release()


def test_the_default_lock_directory_is_never_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("IRIS_SMOKE_LOCK_DIR", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert lock_dir() == tmp_path / "cache" / "iris-smoke" / "locks"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert lock_dir() == tmp_path / "home" / ".cache" / "iris-smoke" / "locks"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert lock_dir() == tmp_path / "run" / "iris-smoke"


def test_a_symlinked_canary_lock_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = _victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / "canary.lock").symlink_to(target)
    with pytest.raises(UnsafePath, match="symlink"):
        StateLock(state / "canary.lock").acquire()
    assert target.read_text() == SECRET


def test_a_hard_linked_canary_lock_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    target = _victim(state)
    os.link(target, state / "canary.lock")
    with pytest.raises(UnsafePath, match="links"):
        StateLock(state / "canary.lock").acquire()
    assert target.read_text() == SECRET


def test_the_run_command_refuses_a_planted_lock_directory_with_exit_2(tmp_path: Path) -> None:
    locks = tmp_path / "theirs"
    locks.mkdir(mode=0o700)
    os.chown(locks, NOBODY, NOBODY)
    done = subprocess.run(
        [sys.executable, "-m", "supervisor", "run", "--log-dir", str(tmp_path / "runs"), "--tests", "simple"],
        cwd=tmp_path, env=dict(os.environ, IRIS_SMOKE_LOCK_DIR=str(locks)),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"owned by uid {NOBODY}" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
