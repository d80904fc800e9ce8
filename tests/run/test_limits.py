"""Explicit limits instead of crashes: the fd limit, failed forks, the stream and byte caps."""

import errno
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from common.child_exit import ChildExit
from common.deadline import Deadline
from common.messages import Kind
from common.outcome import FailureReason
from supervisor import arbiter
from supervisor.arbiter import Supervisor
from supervisor.children import ChildSpec, ChildState
from supervisor.restart import RestartMode, RestartPolicy
from tests.helpers import processes
from tests.helpers.forked_child import ChildProcess
from tests.helpers.supervisor_proc import REPO_ROOT, run_argv
from tests.streams.conftest import local_transport, read_records, seq_lines, stream_spec

RUN_EXIT_S = 60.0


def _demo_run(tmp_path: Path, run_id: str, streams: int, nofile: tuple[int, int]) -> tuple[int, list[dict[str, Any]]]:
    """A demo run (only real subprocess trees) under the given RLIMIT_NOFILE; (exit code, events)."""
    argv = run_argv(run_id, tmp_path / "runs", "--demo-streams", str(streams), "--demo-duration", "0.5",
                    "--demo-interval", "0.05", "--timeout", "50")  # fmt: skip
    with open(tmp_path / f"{run_id}.out", "wb") as out:
        code = subprocess.run(
            [sys.executable, *argv], cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, timeout=RUN_EXIT_S,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile),
        ).returncode  # fmt: skip
    events = [json.loads(line) for line in (tmp_path / "runs" / run_id / "events.jsonl").read_text().splitlines()]
    assert processes.with_run_tag(run_id) == []
    return code, events


def _of(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name]


def test_the_soft_fd_limit_is_raised_to_the_hard_one_at_start(tmp_path: Path) -> None:
    """Soft 40, hard 4096: both are logged, and 60 children start without one failed fork."""
    code, events = _demo_run(tmp_path, "fdlimit", 60, (40, 4096))
    assert code == 0, (tmp_path / "fdlimit.out").read_text()[-3000:]
    [limit] = _of(events, "fd_limit")
    assert (limit["old_soft"], limit["soft"], limit["hard"]) == (40, 4096, 4096)
    assert not _of(events, "child_spawn_failed") and len(_of(events, "child_started")) == 60


def test_a_fork_that_fails_for_want_of_fds_is_a_child_failure_and_is_retried(tmp_path: Path) -> None:
    """Hard limit 30: pipe2 fails with EMFILE for some children; they back off and start later, no crash."""
    code, events = _demo_run(tmp_path, "emfile", 40, (30, 30))
    output = (tmp_path / "emfile.out").read_text()[-3000:]
    assert code == 0 and not _of(events, "run_crashed"), output
    failed = _of(events, "child_spawn_failed")
    assert failed and {e["errno"] for e in failed} == {"EMFILE"}, output
    retried = {e["child"] for e in failed}
    exited = {e["child"] for e in _of(events, "child_exited") if e["exit_code"] == 0}
    assert retried & exited, "a child whose fork failed was started again by the restart policy, and ran"
    results = json.loads((tmp_path / "runs" / "emfile" / "results.json").read_text())
    assert results["processes"]["leaked"] == 0


def test_a_critical_child_that_cannot_be_forked_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EAGAIN from fork (RLIMIT_NPROC) for a critical child: FAILED and a stop, not an exception."""

    def no_fork(_launch: object) -> tuple[int, int]:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(arbiter, "fork_child", no_fork)
    sup = Supervisor("t", tmp_path, Deadline.after(10))
    never = RestartPolicy(mode=RestartMode.NEVER)
    record = sup.add(ChildSpec(name="cluster", role="cluster", entrypoint="x:y", restart=never, critical=True))
    assert record.state is ChildState.FAILED and record.exit_code == ChildExit.SPAWN_FAILED
    assert sup.stop_reason is FailureReason.CRITICAL_CHILD_FAILED
    other = sup.add(ChildSpec(name="stream:a", role="stream", entrypoint="x:y"))
    assert other.state is ChildState.EXITED, "after a stop, a failed start is just an exit"


def test_a_flooding_stream_stops_writing_at_its_byte_cap(tmp_path: Path) -> None:
    """20 MB of log against a 1 MiB cap: whole records up to the cap, `stream_capped`, follower ended, exit 0."""
    state, out = tmp_path / "state", tmp_path / "run" / "logs" / "vms" / "vm-1.jsonl"
    state.mkdir()
    (state / "iris-worker.log").write_bytes(seq_lines(0, 250_000))
    cap = 1 << 20
    args = stream_spec(local_transport(state), max_bytes=cap)
    with ChildProcess(tmp_path / "run", args) as child:
        child.wait_message(Kind.READY, 10)
        assert child.wait(30) == ChildExit.OK, child.output()
        stats = next(m.body for m in child.messages if m.kind is Kind.STATS)
    size = out.stat().st_size
    assert cap - 400 < size <= cap, size
    records = read_records(out)
    assert [r["seq"] for r in records] == list(range(len(records))), "whole records only"
    assert stats["capped"] is True and stats["file_bytes"] == size
    [capped] = child.events("stream_capped")
    assert (capped["bytes"], capped["max_bytes"], capped["level"]) == (size, cap, "warning")


def test_a_restarted_stream_whose_file_is_full_writes_nothing(tmp_path: Path) -> None:
    """The cap counts the file, so it holds across restarts of the child."""
    state, out = tmp_path / "state", tmp_path / "run" / "logs" / "vms" / "vm-1.jsonl"
    state.mkdir()
    (state / "iris-worker.log").write_bytes(seq_lines(0, 100_000))
    args = stream_spec(local_transport(state), max_bytes=65536)
    with ChildProcess(tmp_path / "run", args) as first:
        assert first.wait(30) == ChildExit.OK, first.output()
    size = out.stat().st_size
    with ChildProcess(tmp_path / "run", args) as second:
        assert second.wait(30) == ChildExit.OK, second.output()
    assert out.stat().st_size == size <= 65536
    assert [e["bytes"] for e in second.events("stream_capped")] == [size, size]
