"""The global deadline passing in each phase: exit 124, outcome `timeout`, cleanup and
audit still run, nothing left.

How each lands where it should, without a sleep:
- cluster: a deadline (0.1 s) shorter than the embedded cluster's start (~0.3 s; the
  phases before it take ~5 ms);
- tests: the held test never finishes;
- diagnostics: the controller is frozen (SIGSTOP) before diagnostics starts, so its RPCs
  wait for the deadline; cleanup then stops a stopped cluster;
- observers and cleanup: phases that never wait on their own, so the supervisor is
  frozen (SIGSTOP, a wedged parent) at the phase's start until its children have
  stopped themselves at the deadline, as they must even when their parent cannot tell
  them; it notices the deadline on its first poll after it continues. Observers take
  a few ms and are not observable from outside before the tests child is forked, so
  that case freezes the supervisor right after: the deadline is then first seen with
  the observers and the tests child all exited by themselves.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosRun, chaos_run
from tests.chaos.invariants import assert_clean_end


def _nothing(_run: ChaosRun) -> None:
    pass


def _wedged_at(phase: str) -> Callable[[ChaosRun], None]:
    def inject(run: ChaosRun) -> None:
        run.sup.wait_event("phase_started", phase=phase)
        if phase == "observers":
            run.started_pid("tests")
        with run.frozen():
            # Cleanup may have stopped every child before the freeze took hold: the
            # supervisor must still wake past its deadline.
            run.wait_children_exited(but="cluster")
            run.wait_deadline_passed()

    return inject


def _controller_frozen_in_diagnostics(run: ChaosRun) -> None:
    run.diagnostics_on_frozen_cluster()


@dataclass(frozen=True)
class Late:
    timeout_s: str
    inject: Callable[[ChaosRun], None]
    seen_in: tuple[str, ...]
    held: bool = True


PHASES = {
    "cluster": Late("0.1", _nothing, ("cluster",)),
    "observers": Late("2", _wedged_at("observers"), ("observers", "tests")),
    "tests": Late("2.5", _nothing, ("tests",)),
    "diagnostics": Late("4", _controller_frozen_in_diagnostics, ("diagnostics",), held=False),
    "cleanup": Late("4", _wedged_at("cleanup"), ("cleanup",), held=False),
}


@pytest.mark.parametrize("late", PHASES.values(), ids=PHASES.keys())
def test_the_deadline_in_each_phase(tmp_path: Path, late: Late) -> None:
    with chaos_run(tmp_path, "deadline", "--timeout", late.timeout_s, held=late.held) as run:
        late.inject(run)
        assert_clean_end(run, 124, "timeout", "deadline_exceeded")
        assert run.phase_of_stop() in late.seen_in
