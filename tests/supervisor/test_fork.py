"""What a forked child inherits from its parent's heap, and what it must never do with it."""

import gc
import os
import signal
from pathlib import Path

from tests.helpers.forked import forked_child, run_to_end


class _Finalized:
    """Part of a reference cycle; its finalizer records which process ran it."""

    def __init__(self, marker_dir: Path) -> None:
        self.marker_dir = marker_dir
        self.cycle = self

    def __del__(self) -> None:
        (self.marker_dir / f"finalized-by-{os.getpid()}").touch()


def test_a_child_never_runs_finalizers_of_garbage_it_inherited(tmp_path: Path) -> None:
    """The parent's garbage is the parent's: a finalizer that ran in a child once re-entered
    the import lock mid-import (Python 3.11 raised KeyError and the child crashed)."""
    markers = tmp_path / "markers"
    markers.mkdir()
    gc.disable()  # keep the cycle uncollected in this process until the child has run
    try:
        _Finalized(markers)
        child = run_to_end("tests.children:collect_garbage", {}, tmp_path / "run", 10)
    finally:
        gc.enable()
        gc.collect()
    assert child.exit_code == 0
    assert sorted(p.name for p in markers.iterdir()) == [f"finalized-by-{os.getpid()}"]


def test_a_drain_sent_the_moment_a_child_is_forked_waits_for_its_handler(tmp_path: Path) -> None:
    """SIGUSR1's default action kills: a drain that reached a just-forked stream before its
    runtime had a handler killed it before it said anything (its host judged silent)."""
    with forked_child("tests.children:wait_for_drain", {}, tmp_path / "run", timeout_s=30) as child:
        os.kill(child.pid, signal.SIGUSR1)  # before the child can have run any code of its own
        assert child.reap(20) == 0, child.events_tail()
