"""The log-service follower reads bounded pages: a page over --max-page-bytes is asked again for
half as many lines; one it still cannot read (a single entry over the cap, or a page begun and
not finished in time) ends it BROKEN_REPLY with the report on stderr, and the stream child
sends the report (`reply_too_large` / `controller_timeout`) once, which ends the run.
"""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from common.messages import Kind
from tests.helpers.forked_child import REPO_ROOT, ChildProcess
from tests.helpers.hostile_controller import running
from tests.helpers.http_stub import Stub, serving
from tests.streams.conftest import FAST_BACKOFF
from workers.hosts import Role, VmHost
from workers.messages import BrokenReply
from workers.stream.follower_exit import BROKEN_REPLY_PREFIX, FollowerExit, parse_mismatch
from workers.stream.spec import StreamSpec
from workers.transports import IrisLogTransport

FETCH_LOGS = "finelog.logging.LogService/FetchLogs"
WAIT_S = 20.0
CAP = 256 * 1024
LINE = "x" * 4000  # 1000 of them: a 4 MB page; 62 of them fit the cap


class _FatLines(Stub):
    """A log service whose rows are 4 KB each: it answers as many as asked for, after the cursor."""

    rows = 200
    asked: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        body = json.loads(self.body())
        if self.path != f"/{FETCH_LOGS}":
            return self.answer(404, b"not found")
        self.asked.append(int(body["maxLines"]))
        first = int(body.get("cursor", "0")) + 1
        seqs = range(first, min(self.rows, first + int(body["maxLines"]) - 1) + 1)
        entries = [{"seq": str(s), "timestamp": {"epochMs": "1796545173013"}, "data": LINE} for s in seqs]
        cursor = str(seqs[-1] if seqs else first - 1)
        return self.answer(200, json.dumps({"entries": entries, "cursor": cursor}).encode())


@pytest.fixture
def fat_lines() -> Iterator[str]:
    _FatLines.asked = []
    with serving(_FatLines) as url:
        yield url


def _follow(url: str, seconds: float, *extra: str) -> "subprocess.CompletedProcess[bytes]":
    argv = [sys.executable, "-m", "workers.logservice_follow", "--controller", url, "--key", "/system/controller",
            f"--max-page-bytes={CAP}", "--deadline-unix", f"{time.time() + seconds:.3f}", *extra]  # fmt: skip
    return subprocess.run(argv, capture_output=True, cwd=REPO_ROOT, timeout=seconds + WAIT_S)


def test_a_page_over_the_cap_is_asked_again_for_fewer_lines(fat_lines: str) -> None:
    done = _follow(fat_lines, 3.0)
    assert done.returncode == FollowerExit.OK, done.stderr
    lines = done.stdout.decode().splitlines()
    assert len(lines) == _FatLines.rows and all(line.endswith(LINE) for line in lines), len(lines)
    assert _FatLines.asked[:5] == [1000, 500, 250, 125, 62], _FatLines.asked


@pytest.mark.parametrize(
    ("mode", "code", "seconds", "cap"),
    [("huge", "reply_too_large", 10.0, CAP), ("drip", "controller_timeout", 3.0, 2_000_000)],
)
def test_a_page_it_cannot_read_ends_the_follower_with_the_report(
    mode: str, code: str, seconds: float, cap: int
) -> None:
    """The hostile server ignores maxLines (a page over the cap at every size) or drips its page
    (a cap over the length it declares, so that the time limit is what ends it)."""
    with running(f"{FETCH_LOGS}={mode}") as url:
        started = time.monotonic()
        done = _follow(url, seconds, f"--max-page-bytes={cap}")
        took_s = time.monotonic() - started
    assert done.returncode == FollowerExit.BROKEN_REPLY, done.stderr
    report = parse_mismatch(done.stderr.decode(), BROKEN_REPLY_PREFIX)
    assert report is not None and report["code"] == code and report["method"] == FETCH_LOGS, done.stderr
    assert b"Traceback" not in done.stderr
    assert took_s < seconds + 5.0, took_s


def test_the_stream_child_reports_a_broken_page_once(tmp_path: Path) -> None:
    with running(f"{FETCH_LOGS}=huge") as url:
        transport = IrisLogTransport(url, poll_interval_s=0.1, max_page_bytes=CAP)
        spec = StreamSpec(VmHost("ctl", 0, Role.CONTROLLER, "ctl"), "iris", transport, backoff=FAST_BACKOFF)
        with ChildProcess(tmp_path, spec, name="stream:ctl") as child:
            child.wait_message(Kind.READY, WAIT_S)
            deadline = time.monotonic() + WAIT_S
            while len(child.events("stream_disconnected")) < 2 and time.monotonic() < deadline:
                child.poll_messages(0.1)
            child.stop()
            reports = [m.body for m in child.messages if isinstance(m, BrokenReply) and m.code == "reply_too_large"]
            assert len(reports) == 1 and reports[0]["method"] == FETCH_LOGS, reports
            (event,) = child.events("reply_too_large")
            assert event["level"] == "error"
