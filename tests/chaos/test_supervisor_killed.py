"""SIGKILL the supervisor itself: no verdict can be written, but its children see their
parent die (parent-death signal), stop by themselves within a bounded time (the cluster
child's own grace, `invariants.ORPHANS_GONE_S` at most) and leave nothing: no process of
the run, and nothing unreaped once their new reaper (this test process, a subreaper) has
collected them."""

import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from local_cluster import private_socket
from tests.chaos.harness import WAIT_S, ChaosRun, chaos_run
from tests.chaos.invariants import assert_clean_end
from tests.helpers import processes
from tests.helpers.waiting import wait_for

# One round of refused calls, the probe, the last report: well under the sweep's 4 s budget.
# Had it swept, it would exit no sooner than that budget after its resume; under it, it did
# not, with room for a loaded machine (a 2 s bound over a fast exit is a flake there).
SWEEP_BUDGET_S = 4.0
GONE_EXIT_S = SWEEP_BUDGET_S - 0.5


def _tests_running(run: ChaosRun) -> None:
    run.worker_stream()
    run.pid_of("tests")


def _cleanup_started(run: ChaosRun) -> None:
    run.sup.wait_event("phase_started", phase="cleanup")


WHEN: dict[str, Callable[[ChaosRun], None]] = {"tests": _tests_running, "cleanup": _cleanup_started}


@pytest.mark.parametrize("when", WHEN.values(), ids=WHEN.keys())
def test_a_killed_supervisor_leaves_nothing(tmp_path: Path, when: Callable[[ChaosRun], None]) -> None:
    with chaos_run(tmp_path, "sup-killed", held=when is _tests_running) as run:
        when(run)
        run.sup.signal(signal.SIGKILL)
        assert_clean_end(run, -signal.SIGKILL, None)
        assert not (run.sup.run_dir / "results.json").exists()


def test_a_killed_supervisor_whose_cluster_went_first_ends_the_tests_child_at_once(tmp_path: Path) -> None:
    """The cluster child stops the cluster before the tests child gets to sweep (held here by
    SIGSTOP until the socket is gone): the sweep sees the controller gone and ends at once
    (`sweep_skipped`, reason controller_gone), rather than retrying for its 4 s budget."""
    with chaos_run(tmp_path, "sup-killed-gone") as run:
        run.worker_stream()
        tests = psutil.Process(run.pid_of("tests"))
        (ready,) = run.sup.wait_event("cluster_ready")
        socket = private_socket.socket_of(str(ready["address"]))
        tests.suspend()  # its parent-death SIGTERM waits, pending, until it is continued
        run.sup.signal(signal.SIGKILL)
        wait_for(lambda: not socket.exists(), WAIT_S, "the cluster child to stop the cluster")
        resumed = time.monotonic()
        tests.resume()
        wait_for(lambda: not processes.alive_pids([tests.pid]), WAIT_S, "the tests child to exit")
        assert time.monotonic() - resumed < GONE_EXIT_S
        assert_clean_end(run, -signal.SIGKILL, None)
        (skipped,) = run.sup.find("sweep_skipped")
        assert skipped["reason"] == "controller_gone" and skipped["child"] == "tests", skipped
