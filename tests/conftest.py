"""Suite-wide guards: every test must leave no process behind.

pytest makes itself a child subreaper, so anything a test starts that gets orphaned is
re-parented here rather than to init, where we can see it, fail the test and reap it.
"""

import contextlib
import os
import time
from collections.abc import Iterator

import psutil
import pytest

from common import linux
from tests.helpers import processes

LEFTOVER_WAIT_S = 5.0


@pytest.fixture(scope="session", autouse=True)
def _pytest_is_subreaper() -> None:
    linux.set_child_subreaper()


def _reap_zombie_children() -> None:
    for child in psutil.Process().children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.NoSuchProcess, ChildProcessError):
            continue


def _leftovers(before: set[int], started: float) -> list[psutil.Process]:
    _reap_zombie_children()
    mine = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    tagged = [p for p in processes.with_run_tag() if p.create_time() >= started - 1]
    found = {p.pid: p for p in [*mine, *tagged]}
    return [p for p in found.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    started = time.time()
    yield
    end = time.monotonic() + LEFTOVER_WAIT_S
    left = _leftovers(before, started)
    while left and time.monotonic() < end:
        psutil.wait_procs(left, timeout=0.1)
        left = _leftovers(before, started)
    if left:
        report = processes.describe(left)
        for proc in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(left, timeout=2)
        _reap_zombie_children()
        pytest.fail(f"test left processes behind:\n{report}")
