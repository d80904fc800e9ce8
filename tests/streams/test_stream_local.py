"""The stream child as a real process, following the fake follower through the local transport."""

import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from common.child_exit import ChildExit
from common.messages import Kind
from tests.helpers.forked_child import ChildProcess
from tests.helpers.waiting import wait_for
from tests.streams.conftest import (
    FAST_BACKOFF,
    FOLLOWER,
    count_lines,
    local_transport,
    read_records,
    seq_lines,
    stream_spec,
    ts,
    validate,
)
from workers.hosts import HostileNameError
from workers.stream.spec import StreamSpec
from workers.transports import SshTransport

MAX_RSS_BYTES = 60 * 1024 * 1024
HUGE_LINE_BYTES = 64 * 1024 * 1024
# Generous for a loaded machine: about 1 s idle; the old pause after small reads made it
# more than 30 s (a pipe's worth, 1 MiB, per 0.5 s pause).
HUGE_LINE_DRAIN_S = 15.0


def stream_args(state: Path, **extra: Any) -> StreamSpec:
    return stream_spec(local_transport(state), backoff=FAST_BACKOFF, **extra)


def followers(state: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if str(FOLLOWER) in cmdline and str(state) in " ".join(cmdline):
            found.append(proc)
    return found


def test_streams_lines_into_schema_valid_records(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "run" / "logs" / "vms" / "vm-1.jsonl"
    state.mkdir()
    (state / "iris-worker.log").write_bytes(seq_lines(0, 1000))
    with ChildProcess(tmp_path / "run", stream_args(state)) as child:
        child.wait_message(Kind.READY, 10)
        wait_for(lambda: count_lines(out) == 1000, 10, "1000 records")
        with open(state / "iris-worker.log", "ab") as log:
            log.write(seq_lines(1000, 1100))
        wait_for(lambda: count_lines(out) == 1100, 10, "1100 records")
        assert child.stop() == ChildExit.OK
        stats = child.wait_message(Kind.STATS, 1).body
    recs = read_records(out)
    validate(recs)
    assert [r["seq"] for r in recs] == list(range(1100))
    assert [r["line"] for r in recs] == [f"seq={i} payload" for i in range(1100)]
    assert stats["lines"] == 1100 and stats["last_ts"] == ts(1099).decode()


def test_stop_takes_under_a_second_and_leaves_no_follower(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "iris-worker.log").write_bytes(seq_lines(0, 10))
    with ChildProcess(tmp_path / "run", stream_args(state)) as child:
        child.wait_message(Kind.READY, 10)
        wait_for(lambda: followers(state), 10, "the follower")
        started = time.monotonic()
        code = child.stop()
        elapsed = time.monotonic() - started
        assert code == ChildExit.OK and elapsed < 1.0, elapsed
        assert child.wait_message(Kind.STATS, 1).body["lines"] == 10
    assert followers(state) == []
    assert [e["event"] for e in child.events()][-2:] == ["stream_disconnected", "stream_stopped"]


def test_reconnects_with_backoff_until_the_container_exists(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "run" / "logs" / "vms" / "vm-1.jsonl"
    state.mkdir()
    with ChildProcess(tmp_path / "run", stream_args(state)) as child:
        child.wait_message(Kind.READY, 10)
        wait_for(lambda: len(child.events("stream_backoff")) >= 2, 10, "two backoffs")
        (state / "iris-worker.log").write_bytes(seq_lines(0, 5))
        wait_for(lambda: count_lines(out) == 5, 10, "records after the container appears")
        child.stop()
        stats = child.wait_message(Kind.STATS, 1).body
    disconnected = child.events("stream_disconnected")
    assert "No such container" in disconnected[0]["stderr_tail"] and disconnected[0]["exit_code"] == 1
    assert stats["reconnects"] >= 2 and stats["gaps"] == 0


def test_silence_is_reported_stale_once_per_silence(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "run" / "logs" / "vms" / "vm-1.jsonl"
    state.mkdir()
    (state / "iris-worker.log").write_bytes(seq_lines(0, 1))
    args = stream_args(state, stale_after_s=0.3, progress_interval_s=0.2)
    with ChildProcess(tmp_path / "run", args) as child:
        wait_for(lambda: child.events("stream_stale"), 10, "a stale event")
        with open(state / "iris-worker.log", "ab") as log:
            log.write(seq_lines(1, 2))
        wait_for(lambda: count_lines(out) == 2, 10, "the second line")
        wait_for(lambda: len(child.events("stream_stale")) == 2, 10, "a second stale event")
        wait_for(
            lambda: any(m.kind == Kind.PROGRESS and m.body["stale"] for m in child.poll_messages(0.05)),
            10,
            "a progress message that says stale",
        )
        child.stop()
        assert child.wait_message(Kind.STATS, 1).body["stale"] == 2


@pytest.mark.parametrize("field", ["vm", "container"])
@pytest.mark.parametrize("shape", ["x;touch {marker}", "$(touch {marker})", "`touch {marker}`", "x\ntouch {marker}"])
def test_hostile_names_are_never_executed(tmp_path: Path, field: str, shape: str) -> None:
    """Refused when the supervisor builds the child's arguments: no child, no command line."""
    marker = tmp_path / "pwned"
    transport = SshTransport(user="root", port=1, remote_template="echo {container}")
    with pytest.raises(HostileNameError) as refused:
        stream_spec(transport, **{field: shape.format(marker=marker)})
    assert refused.value.field == field
    assert not marker.exists()


class PeakRss:
    """Samples a process's RSS each time a wait loop checks its condition."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0

    def sample(self) -> None:
        self.peak = max(self.peak, self.proc.memory_info().rss)


def test_a_50mb_line_keeps_memory_bounded(tmp_path: Path) -> None:
    state, out = tmp_path / "state", tmp_path / "run" / "logs" / "vms" / "vm-1.jsonl"
    state.mkdir()
    log = state / "iris-worker.log"
    log.write_bytes(ts(0) + b" bad \xff utf8\n" + ts(1) + b" " + b"x" * (50 * 1024 * 1024))
    with ChildProcess(tmp_path / "run", stream_args(state, progress_interval_s=0.1)) as child:
        child.wait_message(Kind.READY, 10)
        rss = PeakRss(child.pid)

        def read_all_of_it() -> bool:
            rss.sample()
            child.poll_messages(0)
            progress = [m for m in child.messages if m.kind == Kind.PROGRESS]
            return count_lines(out) == 2 and bool(progress) and progress[-1].body["last_line_age_s"] is not None

        wait_for(read_all_of_it, 30, "the truncated record")
        with open(log, "ab") as handle:
            handle.write(b"\n" + ts(2) + b" after\n")
        wait_for(lambda: rss.sample() or count_lines(out) == 3, 30, "the line after the long one")
        child.stop()
        stats = child.wait_message(Kind.STATS, 1).body
    recs = read_records(out)
    validate(recs)
    assert recs[0]["line"] == "bad \\xff utf8" and recs[0]["invalid_utf8"] is True
    assert recs[1]["truncated"] is True and recs[1]["line"] == "x" * (65536 - 31)
    assert recs[2]["line"] == "after"
    assert stats["bytes"] > 50 * 1024 * 1024 and stats["truncated_lines"] == 1
    assert rss.peak < MAX_RSS_BYTES, f"peak RSS {rss.peak / 2**20:.1f} MiB"


def test_a_64_mib_line_in_small_writes_drains_at_read_speed(tmp_path: Path) -> None:
    """The rest of an over-long line is never paused for coalescing: in 8 KiB writes it
    drained at a pipe's worth per 0.5 s pause (64 MiB: over 30 s), and the line after it waited."""
    state, out = tmp_path / "state", tmp_path / "run" / "logs" / "vms" / "vm-1.jsonl"
    state.mkdir()
    log = state / "iris-worker.log"
    log.write_bytes(ts(0) + b" " + b"x" * (HUGE_LINE_BYTES - len(ts(0)) - 1) + b"\n" + ts(1) + b" after\n")
    # 8 KiB writes paced like a network's: each read finds a piece or two, under 16 KiB.
    transport = local_transport(state, "--write-bytes", "8192", "--write-pause-s", "0.0001")
    with ChildProcess(tmp_path / "run", stream_spec(transport, backoff=FAST_BACKOFF)) as child:
        child.wait_message(Kind.READY, 10)
        started = time.monotonic()
        wait_for(lambda: count_lines(out) == 2, HUGE_LINE_DRAIN_S, "the line after the 64 MiB one")
        elapsed = time.monotonic() - started
        child.stop()
        stats = child.wait_message(Kind.STATS, 1).body
    recs = read_records(out)
    assert recs[0]["truncated"] is True and len(recs[0]["line"]) == 65536 - 31
    assert recs[1]["line"] == "after" and stats["truncated_lines"] == 1
    assert stats["bytes"] >= HUGE_LINE_BYTES, stats
    print(f"64 MiB line drained in {elapsed:.2f} s")
