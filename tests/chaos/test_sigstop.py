"""SIGSTOP the cluster mid-run (the `cluster` child, or the embedded cluster under it),
then SIGTERM the run. The stop sends CONT after TERM, as systemd does: the frozen process
wakes, handles its TERM and stops what it started within its grace, instead of losing
that grace and being KILLed with its VM hosts and tasks orphaned."""

import signal
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.chaos.harness import ChaosRun, chaos_run
from tests.chaos.invariants import assert_clean_end

FROZEN: dict[str, Callable[[ChaosRun], psutil.Process]] = {
    "cluster-child": lambda run: psutil.Process(run.pid_of("cluster")),
    "cluster": ChaosRun.cluster_process,
}


@pytest.mark.parametrize("frozen", FROZEN.values(), ids=FROZEN.keys())
def test_a_frozen_cluster_is_stopped_cleanly(tmp_path: Path, frozen: Callable[[ChaosRun], psutil.Process]) -> None:
    with chaos_run(tmp_path, "sigstop") as run:
        run.worker_stream()
        run.pid_of("tests")
        frozen(run).suspend()
        run.sup.signal(signal.SIGTERM)
        assert_clean_end(run, 143, "cancelled", "sigterm")
        stopped = [e["exit_code"] for e in run.sup.find("cluster_stopped")]
        assert stopped == [0], f"the cluster child stops the cluster itself, which exits 0: {stopped}"
