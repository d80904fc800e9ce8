"""One log reader per run (workers/log_reader.py), its streams subscribed to it, against the real Iris.

The streams of a run no longer fork a follower each: they subscribe to the run's reader, which
polls the log service once for every key. What a follower gave must hold through it: every row
once, in order, resumed exactly by cursor when the reader or a stream child is killed, no gap.
"""

import contextlib
import functools
import threading
from pathlib import Path

import psutil
import pytest

from common.controller_target import ApiKind, ControllerTarget
from common.messages import Kind
from tests.helpers import hostile_controller, processes
from tests.helpers.forked_child import ChildProcess
from tests.helpers.iris import running_iris_cluster
from tests.helpers.waiting import wait_for
from tests.streams.test_iris_log_follow import (
    KILLS,
    WAIT_S,
    Stream,
    busy,
    drained,
    every_row_once_resumed_by_cursor,
    healthy_worker,
    log_server,
    three_streams,
)
from workers.child_args import LogReaderArgs
from workers.stream.subscription import Subscribe, Subscription, abstract_address, reader_name
from workers.transports import IrisLogTransport

READER_ENTRYPOINT = "workers.log_reader:main"
IDLE_WINDOW_S = 2.0
IDLE_CPU_S = 0.3  # polling every 0.2 s an empty log service costs a few ms a poll


class Reader:
    """The run's reader, as the supervisor forks it, and restarted as its restart policy would."""

    def __init__(self, run_dir: Path, url: str) -> None:
        self.name = reader_name("test-run")
        target = ControllerTarget(ApiKind.IRIS, url, "smoke")
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


# A real Iris and eight kills, six waiting for 20 new lines: ~45 s alone, more beside other suites.
@pytest.mark.timeout(240)
def test_streams_under_one_reader_resume_by_cursor_when_it_or_they_are_killed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with running_iris_cluster(tmp_path) as cluster, contextlib.ExitStack() as stack:
        worker, server = healthy_worker(cluster), log_server(cluster)
        reader = Reader(run_dir, cluster.url)
        reader.start()
        stack.callback(reader.close)
        streams = three_streams(IrisLogTransport(cluster.url, reader=reader.name), worker, run_dir, stack)
        with busy(cluster, server, streams[-1].key):
            # The load lasts LOAD_ROUNDS job launches: each kill_child first waits for new lines (from
            # the restarted reader: every stream resumed from it), so a round waits three times. Before
            # the first kill every stream has lines, so a cursor to resume by.
            for stream in streams:
                stream.new_lines()
            for _ in range(KILLS):
                reader.kill_and_restart()
                for stream in streams:
                    streaming_without_a_follower(stream)
                    stream.kill_child_now(ready=False)  # its READY is waited for by its next new_lines
            for stream in streams:
                streaming_without_a_follower(stream)
        for stream in streams:
            wait_for(functools.partial(stream.caught_up, server), WAIT_S, f"{stream.key} caught up")
        stats = drained(streams)
        for stream in streams:
            every_row_once_resumed_by_cursor(stream, server, stats[stream.key])


def streaming_without_a_follower(stream: Stream) -> None:
    """Once the stream's child is READY and wrote KILL_AFTER_LINES new lines (through the reader):
    it forked no follower of its own."""
    stream.new_lines()
    assert stream.child is not None and processes.followers_under(stream.child.pid) == []


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@pytest.mark.parametrize("subscribed", [False, True])
def test_a_reader_with_nothing_to_read_sleeps_between_polls(tmp_path: Path, subscribed: bool) -> None:
    """No subscription, or one whose key stays silent: the reader waits in poll(2), it does not spin."""
    with hostile_controller.running() as url:
        reader = Reader(tmp_path / "run", url)
        reader.start()
        try:
            assert reader.child is not None
            child = reader.child
            with contextlib.ExitStack() as stack:
                if subscribed:
                    request = Subscribe("/system/worker/w", None, None)
                    subscription = Subscription.open(abstract_address(reader.name), request)
                    stack.callback(subscription.sock.close)
                wait_for(lambda: child.events("log_reader_ready"), WAIT_S, "the reader found its log service")
                before = cpu_s(child.pid)
                threading.Event().wait(IDLE_WINDOW_S)  # a window to measure over, not a synchronisation
                used = cpu_s(child.pid) - before
            assert used < IDLE_CPU_S, f"{used:.2f} s of CPU in {IDLE_WINDOW_S} s idle"
        finally:
            reader.close()
