"""SIGTERM the supervisor in each phase of a run: it stops everything, runs its cleanup
and audit, and reports `cancelled` (exit 143) with reason `sigterm`, leaving nothing.

The trigger is the phase's own event. Observers start without waiting for anything, so
a SIGTERM sent then is read by the loop's next poll, the first of the tests phase.
Diagnostics gets its SIGTERM while a frozen controller keeps it at work (it would
otherwise be over in a few hundred ms)."""

import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.child_exit import ChildExit
from tests.chaos.harness import ChaosRun, chaos_run
from tests.chaos.invariants import assert_clean_end


@contextmanager
def _as_is(_run: ChaosRun) -> Iterator[None]:
    yield


@contextmanager
def _cluster_frozen(run: ChaosRun) -> Iterator[None]:
    """Diagnostics stuck on a frozen controller: a SIGTERM cuts them short (the supervisor
    stops the diagnostics child) rather than serving them their whole budget."""
    cluster = run.diagnostics_on_frozen_cluster()
    try:
        yield
        step = run.sup.wait_event("cleanup_step", roles=["tests", "diagnostics", "fleet"])[0]
        assert step["stopped"] == 1, step
        exited = run.sup.wait_event("child_exited", child="diagnostics")[0]
        assert exited["exit_code"] != ChildExit.DEADLINE, "diagnostics were served until their deadline"
    finally:
        cluster.resume()


@dataclass(frozen=True)
class Phase:
    reached: Callable[[ChaosRun], object]
    seen_in: tuple[str, ...]
    during: Callable[[ChaosRun], AbstractContextManager[None]] = _as_is
    held: bool = True


def _phase(name: str) -> Callable[[ChaosRun], object]:
    return lambda run: run.sup.wait_event("phase_started", phase=name)


PHASES = {
    "cluster": Phase(lambda run: run.started_pid("cluster"), ("cluster",)),
    "observers": Phase(_phase("observers"), ("observers", "tests")),
    "tests": Phase(lambda run: (run.worker_stream(), run.pid_of("tests")), ("tests",)),
    "diagnostics": Phase(lambda run: None, ("diagnostics",), during=_cluster_frozen, held=False),
    "cleanup": Phase(_phase("cleanup"), ("cleanup",), held=False),
}


@pytest.mark.parametrize("phase", PHASES.values(), ids=PHASES.keys())
def test_sigterm_in_each_phase(tmp_path: Path, phase: Phase) -> None:
    with chaos_run(tmp_path, "sigterm", held=phase.held) as run:
        phase.reached(run)
        with phase.during(run):
            run.sup.signal(signal.SIGTERM)
        assert_clean_end(run, 143, "cancelled", "sigterm")
        assert run.phase_of_stop() in phase.seen_in
