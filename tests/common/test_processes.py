"""The process toolkit: one escalation, waited for by the caller; one write-all."""

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import psutil
import pytest

from common import processes
from common.fdio import write_all
from supervisor import leftovers

Starter = Callable[[str], "subprocess.Popen[bytes]"]
IGNORES_TERM = (
    "import signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); signal.pause()"
)
SLEEPS = "import signal; print('ready', flush=True); signal.pause()"


def _ready(popen: "subprocess.Popen[bytes]") -> None:
    assert popen.stdout is not None
    readable, _, _ = select.select([popen.stdout], [], [], 10.0)
    assert readable and popen.stdout.readline() == b"ready\n", "child never became ready"


@pytest.fixture
def start() -> Iterator[Starter]:
    started: list[subprocess.Popen[bytes]] = []

    def run(code: str) -> "subprocess.Popen[bytes]":
        popen = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
        started.append(popen)
        _ready(popen)
        return popen

    yield run
    for popen in started:
        processes.signal_group(popen.pid, signal.SIGKILL)
        popen.wait(timeout=5)
        assert popen.stdout is not None
        popen.stdout.close()


def test_escalation_kills_what_ignores_term_waiting_only_through_the_caller(
    start: Starter,
) -> None:
    """TERM, a grace spent in the caller's waiter, then KILL; the caller's waiter is the only reaper."""
    popen = start(IGNORES_TERM)
    waits: list[tuple[float, bool]] = []

    def wait(timeout_s: float, done: Callable[[], bool], skippable: bool) -> bool:
        waits.append((timeout_s, skippable))
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=timeout_s)
        return done()

    result = processes.escalate(
        [popen.pid], [psutil.Process(popen.pid)], grace_s=0.2, wait=wait, gone=lambda: popen.returncode is not None
    )
    assert result == processes.Escalated(grace_expired=True, killed=1)
    assert popen.returncode == -signal.SIGKILL
    assert waits == [(0.2, True), (processes.KILL_WAIT_S, False)]


def test_escalation_waits_for_the_snapshot_itself(start: Starter) -> None:
    """`gone()` is only the caller's part (what it reaps): a snapshot member that ignores TERM is
    waited for through the grace and KILLed, although the caller has nothing left to wait for."""
    popen = start(IGNORES_TERM)

    def wait(timeout_s: float, done: Callable[[], bool], _skippable: bool) -> bool:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=timeout_s)
        return done()

    result = processes.escalate([], [psutil.Process(popen.pid)], grace_s=0.2, wait=wait, gone=lambda: True)
    assert result == processes.Escalated(grace_expired=True, killed=1, survivors=())
    assert popen.returncode == -signal.SIGKILL


def test_a_stopped_leftover_is_continued_and_ends_on_term(start: Starter) -> None:
    """A SIGSTOPped leftover gets CONT after its TERM, so it ends within the grace, unKILLed."""
    popen = start(SLEEPS)
    os.kill(popen.pid, signal.SIGSTOP)
    report = leftovers.delete([psutil.Process(popen.pid)], grace_s=10.0)
    assert report.killed == 0
    assert len(report.found) == 1


def test_write_all_delivers_everything_through_a_full_pipe() -> None:
    """os.write to a pipe writes at most what fits; write_all keeps going until all is written."""
    data = os.urandom(1024 * 1024)  # far more than a pipe holds (64 KiB by default)
    read_fd, write_fd = os.pipe()
    received = bytearray()

    def drain() -> None:
        while chunk := os.read(read_fd, 65536):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        write_all(write_fd, data)
    finally:
        os.close(write_fd)
        reader.join(timeout=10)
        os.close(read_fd)
    assert bytes(received) == data
