"""A log service whose API is not ours reaches the verdict: the follower exits API_MISMATCH with the
mismatch on stderr, and the stream child sends the same `api_mismatch` report every child sends.

Against a real HTTP server on loopback that plays an Iris with no endpoint registry (404, as
older releases) and a FetchLogs whose `entries` is an object instead of a list.
"""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.messages import Kind
from tests.helpers.forked_child import REPO_ROOT, ChildProcess
from tests.helpers.http_stub import Stub, serving
from tests.streams.conftest import FAST_BACKOFF
from workers.hosts import Role, VmHost
from workers.messages import ApiMismatchReport
from workers.stream.follower_exit import FollowerExit, parse_mismatch
from workers.stream.spec import StreamSpec
from workers.transports import IrisLogTransport

FETCH_LOGS = "finelog.logging.LogService/FetchLogs"
WAIT_S = 20.0


class _Handler(Stub):
    def do_POST(self) -> None:
        self.body()
        status, data = (200, b'{"entries": {"seq": 1}}') if self.path == f"/{FETCH_LOGS}" else (404, b"not found")
        self.answer(status, data)


@pytest.fixture
def server() -> Iterator[str]:
    with serving(_Handler) as url:
        yield url


def test_the_follower_exits_api_mismatch_naming_method_and_path(server: str) -> None:
    deadline = f"{time.time() + WAIT_S:.3f}"
    argv = [sys.executable, "-m", "workers.logservice_follow", "--controller", server, "--key", "/system/controller"]
    done = subprocess.run([*argv, "--deadline-unix", deadline], capture_output=True, cwd=REPO_ROOT, timeout=WAIT_S)
    assert done.returncode == FollowerExit.API_MISMATCH, done.stderr
    assert parse_mismatch(done.stderr.decode()) == {
        "method": FETCH_LOGS,
        "field": "entries",
        "details": "FetchLogs: entries is an object, expected a list",
    }
    assert b"Traceback" not in done.stderr and done.stdout == b""


def test_the_stream_child_reports_the_mismatch_once(server: str, tmp_path: Path) -> None:
    transport = IrisLogTransport(server, poll_interval_s=0.1)
    spec = StreamSpec(VmHost("ctl", 0, Role.CONTROLLER, "ctl"), "iris", transport, backoff=FAST_BACKOFF)
    with ChildProcess(tmp_path, spec, name="stream:ctl") as child:
        child.wait_message(Kind.READY, WAIT_S)
        deadline = time.monotonic() + WAIT_S
        # Reconnects after the first mismatch report nothing new.
        while len(child.events("stream_disconnected")) < 3 and time.monotonic() < deadline:
            child.poll_messages(0.1)
        child.stop()
        reports = [m.body for m in child.messages if isinstance(m, ApiMismatchReport)]
        assert reports == [{"method": FETCH_LOGS, "field": "entries",
                            "details": "FetchLogs: entries is an object, expected a list"}]  # fmt: skip
        (event,) = child.events("iris_api_mismatch")
        assert event["level"] == "error" and event["field"] == "entries"
