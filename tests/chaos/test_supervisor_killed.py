"""SIGKILL the supervisor itself: no verdict can be written, but its children see their
parent die (parent-death signal), stop by themselves within a bounded time (the cluster
child's own grace, `invariants.ORPHANS_GONE_S` at most) and leave nothing: no process of
the run, and nothing unreaped once their new reaper (this test process, a subreaper) has
collected them."""

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosRun, chaos_run
from tests.chaos.invariants import assert_clean_end


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
