"""SIGKILL each kind of process of a running smoke run, one per case.

An observer (a stream, discovery, a monitor) is restarted and the run still passes; a
critical child (tests, the cluster) fails the run as an infrastructure error; a VM host
dying under its task fails the test; a killed diagnostics child costs only its report.
Whatever dies, nothing of the run is left, no zombie, no cut JSON line, no repeated seq.
"""

import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos.harness import ChaosRun, chaos_run
from tests.chaos.invariants import assert_clean_end


def _restarted(child: str) -> Callable[[ChaosRun], None]:
    def wait(run: ChaosRun) -> None:
        run.sup.wait_event("child_exited", child=child, exit_code=-signal.SIGKILL)
        run.pid_of(child)  # its second start said READY

    return wait


def _nothing(_run: ChaosRun) -> None:
    pass


@dataclass(frozen=True)
class Kill:
    """What to SIGKILL (a pid, once it is there), what to wait for before letting the
    held test finish, and the verdict that fits."""

    target: Callable[[ChaosRun], int]
    exit_code: int
    outcome: str
    reasons: tuple[str, ...] = ()
    then: Callable[[ChaosRun], None] = _nothing
    held: bool = True
    check: Callable[[ChaosRun], None] = _nothing
    cluster_killed: bool = False


def _worker_stream(run: ChaosRun) -> int:
    return run.pid_of(run.worker_stream())


def _each_line_once(run: ChaosRun) -> None:
    """The restarted stream resumed after its last line: the task's lines, before and
    after the kill, are on disk once each."""
    [path] = (run.sup.run_dir / "logs").rglob("*-cpu-0-w0.jsonl")
    text = path.read_text()
    assert (text.count("] held"), text.count("] released")) == (1, 1), text


def _diagnostics(run: ChaosRun) -> int:
    cluster = run.diagnostics_on_frozen_cluster()
    try:
        pid = run.started_pid("diagnostics")
        os.kill(pid, signal.SIGKILL)
        run.sup.wait_event("child_exited", child="diagnostics", exit_code=-signal.SIGKILL)
    finally:
        cluster.resume()
    return pid


def _restart_case(child: str) -> Kill:
    return Kill(lambda run: run.pid_of(child), 0, "passed", then=_restarted(child))


CASES = {
    "stream": Kill(
        _worker_stream, 0, "passed", then=lambda run: _restarted(run.worker_stream())(run), check=_each_line_once
    ),
    "discovery": _restart_case("discovery"),
    "monitor-scheduling": _restart_case("monitor:scheduling"),
    "monitor-autoscaler": _restart_case("monitor:autoscaler"),
    "tests": Kill(lambda run: run.pid_of("tests"), 3, "error", ("critical_child_failed",)),
    "diagnostics": Kill(_diagnostics, 0, "passed", held=False),
    "cluster-child": Kill(lambda run: run.pid_of("cluster"), 3, "error", ("critical_child_failed",)),
    "cluster": Kill(lambda run: run.cluster_process().pid, 3, "error", ("critical_child_failed",), cluster_killed=True),
    "vm-host": Kill(lambda run: run.vm_host().pid, 1, "failed", ("test_failed",)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_sigkill_during_a_run(tmp_path: Path, case: Kill) -> None:
    with chaos_run(tmp_path, "sigkill", held=case.held) as run:
        run.pid_of("tests")  # every observer has started by now
        with contextlib.suppress(ProcessLookupError):  # diagnostics: already killed, and reaped
            os.kill(case.target(run), signal.SIGKILL)
        case.then(run)
        if case.outcome == "passed" and case.held:
            run.streams_delivered()
        run.release()
        assert_clean_end(run, case.exit_code, case.outcome, *case.reasons, cluster_killed=case.cluster_killed)
        case.check(run)
