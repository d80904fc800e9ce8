"""The loop core shared by the run's supervisor and the canary: poll set, signals, reaping."""

import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisor.loop import Loop, timeout_ms
from supervisor.reaper import Exit

REPO = Path(__file__).resolve().parents[2]
WAKE_S = 10.0


@pytest.fixture
def loop_and_signals() -> Iterator[tuple[Loop, list[signal.Signals]]]:
    received: list[signal.Signals] = []
    loop = Loop(received.extend)
    loop.open()
    try:
        yield loop, received
    finally:
        loop.close()


def _poll_until_exit(loop: Loop, pid: int) -> Exit:
    end = time.monotonic() + WAKE_S
    while time.monotonic() < end:
        for exit_ in loop.poll_once(end - time.monotonic()):
            if exit_.pid == pid:
                return exit_
    raise AssertionError(f"child {pid} was not reaped within {WAKE_S} s")


def test_sub_millisecond_timeouts_round_up_not_to_zero() -> None:
    """A 0.4 ms wait polls for 1 ms (never 0 ms, a busy loop); 0 and negatives poll at once."""
    assert timeout_ms(0.0004) == 1
    assert timeout_ms(0.001) == 1
    assert timeout_ms(0.0011) == 2
    assert timeout_ms(0.0) == 0
    assert timeout_ms(-3.0) == 0


def test_a_child_exit_wakes_the_loop_and_is_reaped_by_it(loop_and_signals: tuple[Loop, list[signal.Signals]]) -> None:
    """SIGCHLD wakes a long poll; the core reaps the child and hands back its exit code,
    and SIGCHLD itself never reaches the owner's signal handler."""
    loop, received = loop_and_signals
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ))
    started = time.monotonic()
    assert _poll_until_exit(loop, pid).exit_code == 3
    assert time.monotonic() - started < WAKE_S
    assert received == []


def test_signals_reach_the_owner_in_arrival_order(loop_and_signals: tuple[Loop, list[signal.Signals]]) -> None:
    """Signals are recorded by the inbox and handed over on the next wake, in order."""
    loop, received = loop_and_signals
    os.kill(os.getpid(), signal.SIGHUP)
    os.kill(os.getpid(), signal.SIGTERM)
    loop.poll_once(WAKE_S)
    assert received == [signal.SIGHUP, signal.SIGTERM]


def test_a_readable_fd_runs_its_handler_until_unregistered(
    loop_and_signals: tuple[Loop, list[signal.Signals]],
) -> None:
    loop, _received = loop_and_signals
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    ready: list[bytes] = []
    try:
        loop.register(read_fd, lambda fd: ready.append(os.read(fd, 16)))
        os.write(write_fd, b"x")
        loop.poll_once(WAKE_S)
        assert ready == [b"x"]
        loop.unregister(read_fd)
        os.write(write_fd, b"y")
        loop.poll_once(0.0)
        assert ready == [b"x"]
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_only_the_loop_core_reaps() -> None:
    """The single-reaper rule, as a fact about the tree: outside the core and the reaper it
    calls, nothing in the supervisor's processes waits for children."""
    waiters = re.compile(r"\breap_exited\(|\bos\.wait(pid|4)?\(|\bos\.waitid\(")
    allowed = {REPO / "supervisor" / "loop.py", REPO / "supervisor" / "reaper.py"}
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "supervisor").rglob("*.py"))
        if path not in allowed and waiters.search(path.read_text())
    ]
    assert offenders == []
