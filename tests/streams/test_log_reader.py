"""One log reader per run (workers/log_reader.py), its streams subscribed to it, against the real Iris.

The streams of a run no longer fork a follower each: they subscribe to the run's reader, which
polls the log service once for every key. What a follower gave must hold through it: every row
once, in order, resumed exactly by cursor when the reader or a stream child is killed, no gap.
"""

import contextlib
import functools
from pathlib import Path

import pytest

from common.controller_target import ApiKind, ControllerTarget
from common.messages import Kind
from tests.helpers import processes
from tests.helpers.forked_child import ChildProcess
from tests.helpers.iris import IrisCluster, running_iris_cluster
from tests.helpers.waiting import wait_for
from tests.streams.test_iris_log_follow import (
    KILLS,
    WAIT_S,
    busy,
    drained,
    every_row_once_resumed_by_cursor,
    expected_lines,
    fetch_all,
    healthy_worker,
    log_server,
    three_streams,
    written,
)
from workers.child_args import LogReaderArgs
from workers.stream.subscription import reader_name
from workers.transports import IrisLogTransport

READER_ENTRYPOINT = "workers.log_reader:main"


class Reader:
    """The run's reader, as the supervisor forks it, and restarted as its restart policy would."""

    def __init__(self, run_dir: Path, cluster: IrisCluster) -> None:
        self.name = reader_name("test-run")
        target = ControllerTarget(ApiKind.IRIS, cluster.url, "smoke")
        self.args = LogReaderArgs(target, self.name, poll_interval_s=0.2)
        self.run_dir = run_dir
        self.child: ChildProcess | None = None

    def start(self) -> None:
        self.child = ChildProcess(self.run_dir, self.args, name="log_reader", entrypoint=READER_ENTRYPOINT).start()
        self.child.wait_message(Kind.READY, WAIT_S)

    def kill_and_restart(self) -> None:
        assert self.child is not None
        self.child.kill()
        self.child.close()
        self.start()

    def close(self) -> None:
        if self.child is not None:
            self.child.close()


# A real Iris and twelve kills, each waiting for 20 new lines: ~100 s alone, more beside other suites.
@pytest.mark.timeout(240)
def test_streams_under_one_reader_resume_by_cursor_when_it_or_they_are_killed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with running_iris_cluster(tmp_path) as cluster, contextlib.ExitStack() as stack:
        worker, server = healthy_worker(cluster), log_server(cluster)
        reader = Reader(run_dir, cluster)
        reader.start()
        stack.callback(reader.close)
        streams = three_streams(IrisLogTransport(cluster.url, reader=reader.name), worker, run_dir, stack)
        with busy(cluster, server, streams[-1].key):
            for _ in range(KILLS):
                for stream in streams:
                    stream.new_lines()
                reader.kill_and_restart()
                for stream in streams:
                    stream.kill_child()
                    assert stream.child is not None and processes.followers_under(stream.child.pid) == []
            for stream in streams:
                stream.new_lines()
        for stream in streams:
            wait_for(functools.partial(stream.caught_up, server), WAIT_S, f"{stream.key} caught up")
        stats = drained(streams)
        for stream in streams:
            every_row_once_resumed_by_cursor(stream, server, stats[stream.key])
            # The last stream child caught up and was drained: everything its key holds is written.
            assert written(stream.path) == expected_lines(fetch_all(server, stream.key))[0], stream.key
