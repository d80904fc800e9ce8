"""The children's toolkit: one wait for an exit or a stop, one stop on a signal, named budgets."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.deadline import Deadline
from common.fdio import readable
from common.files import open_sole_writer
from common.processes import wait_exit
from common.stop import StopRequest
from tests.helpers.clock import FakeClock

# Exits when its stdin closes; says "ready" first, so a test knows it is running.
EXITS_ON_EOF = "import sys; print('ready', flush=True); sys.stdin.read()"
LONG_S = 30.0  # a deadline no passing test reaches


@pytest.fixture
def procs() -> Iterator[list["subprocess.Popen[bytes]"]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait(timeout=5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def _start(procs: list["subprocess.Popen[bytes]"]) -> "subprocess.Popen[bytes]":
    proc = subprocess.Popen(
        [sys.executable, "-c", EXITS_ON_EOF], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True
    )
    procs.append(proc)
    assert proc.stdout is not None and readable(proc.stdout.fileno(), 10.0), "child never became ready"
    assert proc.stdout.readline() == b"ready\n"
    return proc


def _end(proc: "subprocess.Popen[bytes]") -> None:
    assert proc.stdin is not None
    proc.stdin.close()


def test_wait_exit_wakes_when_the_process_exits_and_reaps_it(procs: list["subprocess.Popen[bytes]"]) -> None:
    proc = _start(procs)
    _end(proc)
    started = time.monotonic()
    assert wait_exit(proc, Deadline.after(LONG_S))
    assert proc.returncode == 0
    assert time.monotonic() - started < LONG_S / 2


def test_wait_exit_wakes_for_a_stop_and_leaves_the_process_running(procs: list["subprocess.Popen[bytes]"]) -> None:
    proc = _start(procs)
    stop = StopRequest()
    stop.request("test")
    assert not wait_exit(proc, Deadline.after(LONG_S), [stop.fd])
    assert proc.poll() is None


def test_wait_exit_ends_at_the_deadline(procs: list["subprocess.Popen[bytes]"]) -> None:
    proc = _start(procs)
    assert not wait_exit(proc, Deadline.after(0.05))
    assert proc.poll() is None


def test_wait_exit_wakes_when_any_of_several_exits(procs: list["subprocess.Popen[bytes]"]) -> None:
    first, second = _start(procs), _start(procs)
    _end(second)
    assert wait_exit([first, second], Deadline.after(LONG_S))
    assert first.poll() is None and second.returncode == 0


def test_wait_exit_with_nothing_to_wait_for_waits_for_the_stop() -> None:
    stop = StopRequest()
    assert not wait_exit([], Deadline.after(0.05), [stop.fd])
    stop.request("test")
    started = time.monotonic()
    assert not wait_exit([], Deadline.after(LONG_S), [stop.fd])
    assert time.monotonic() - started < LONG_S / 2


def test_within_is_the_budget_or_the_deadline_whichever_comes_first() -> None:
    clock = FakeClock(10.0)
    deadline = Deadline(100.0, clock)
    assert deadline.within(5.0).at == 15.0
    assert deadline.within(500.0).at == 100.0
    clock.now = 200.0
    assert deadline.within(5.0).expired()


def test_cap_is_the_smaller_of_the_wait_and_the_time_left_and_never_negative() -> None:
    """A wait computed as `end - now` after its end passed (demo_stream crashed on one in CI)."""
    clock = FakeClock(10.0)
    deadline = Deadline(100.0, clock)
    assert deadline.cap(5.0) == 5.0
    assert deadline.cap(500.0) == 90.0
    assert deadline.cap(-0.001) == 0.0
    clock.now = 200.0
    assert deadline.cap(5.0) == 0.0


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR2)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.usefixtures("restore_signals")
def test_a_stop_signal_requests_the_stop_and_makes_term_ignored() -> None:
    """The first stop signal sets the reason, wakes `fd`, runs `then`, and ignores further TERMs."""
    stop, then_calls = StopRequest(), []
    stop.on_signals({signal.SIGUSR2: "usr2"}, then=lambda: then_calls.append(1))
    assert not readable(stop.fd)
    os.kill(os.getpid(), signal.SIGUSR2)
    assert stop.wait(LONG_S)
    assert (stop.reason, then_calls) == ("usr2", [1])
    assert readable(stop.fd)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    stop.request("later")
    assert stop.reason == "usr2", "the first reason stays"


class WriterBusy(OSError):
    pass


def test_a_second_sole_writer_is_refused_with_the_callers_error(tmp_path: Path) -> None:
    path = tmp_path / "new" / "out.jsonl"
    fd = open_sole_writer(path, os.O_WRONLY | os.O_APPEND, WriterBusy, "has a writer")
    try:
        with pytest.raises(WriterBusy, match=f"^{path} has a writer$"):
            open_sole_writer(path, os.O_WRONLY | os.O_APPEND, WriterBusy, "has a writer")
    finally:
        os.close(fd)
