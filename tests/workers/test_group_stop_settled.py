"""A stop with a `settled` condition KILLs as soon as what the grace was for is done: a real Iris
ignores its TERM for a minute (its log clients flush into a stopped log server), and the grace was
only for its temporary directories, gone a fraction of a second after the signal."""

import signal
import subprocess
import time
from pathlib import Path

from tests.helpers.waiting import wait_for
from workers.groups import ProcessGroups

GRACE_S = 10.0


def _stubborn(tmp_path: Path) -> tuple[ProcessGroups, "subprocess.Popen[bytes]", Path]:
    """A program that, on TERM, removes its temporary file and then keeps running (as Iris does)."""
    mark, ready = tmp_path / "tmp-entry", tmp_path / "ready"
    mark.touch()
    script = f"trap 'rm -f {mark}' TERM; touch {ready}; while :; do sleep 0.05; done"
    groups = ProcessGroups()
    proc = groups.start(["sh", "-c", script])
    wait_for(ready.exists, 10, "the program's TERM trap")
    return groups, proc, mark


def test_the_group_is_killed_once_settled_not_at_the_end_of_the_grace(tmp_path: Path) -> None:
    groups, proc, mark = _stubborn(tmp_path)
    started = time.monotonic()
    code = groups.stop(proc, GRACE_S, settled=lambda: not mark.exists())
    assert code == -signal.SIGKILL and not mark.exists()
    assert time.monotonic() - started < GRACE_S / 3, "killed once its temporary file was gone"


def test_unsettled_it_gets_its_whole_grace(tmp_path: Path) -> None:
    groups, proc, _ = _stubborn(tmp_path)
    started = time.monotonic()
    code = groups.stop(proc, 1.0, settled=lambda: False)
    assert code == -signal.SIGKILL and time.monotonic() - started >= 1.0
