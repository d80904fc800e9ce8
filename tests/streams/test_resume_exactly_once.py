"""Resume across kills: every line exactly once, and no false gap (issue 15).

A real embedded cluster runs a chatty task on its CPU VM host; a stream child follows that
host's container log with the embedded follower (`local_cluster logs`, inclusive
`--since` as docker's), directly or through a real loopback sshd the way `--cluster ssh`
does. While the task writes, the test SIGKILLs, in turn, the follower process (the local
`ssh` client, for ssh) and the stream child itself (then starts a new one on the same
file). Afterwards the stream file holds the container log exactly: every line once, in
order, `seq` 0..n-1, and every reconnect logged `stream_resumed` (overlap seen), never
`stream_gap`.

A follower that really drops lines on resume (the fake follower's `--drop-on-resume`)
gives one `stream_gap` whose bounds are the lines either side of the missing ones.
"""

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from common.child_exit import ChildExit
from common.messages import Kind
from tests.helpers import processes
from tests.helpers.cluster import REPO_ROOT, running_local_cluster
from tests.helpers.forked_child import ChildProcess
from tests.helpers.sshd import Sshd
from tests.helpers.waiting import wait_for
from tests.local_cluster.client import Client, python_argv
from tests.streams.conftest import (
    FAST_BACKOFF,
    FOLLOWER,
    local_transport,
    read_records,
    seq_lines,
    stream_spec,
    ts,
    validate,
)
from workers.stream.spec import StreamSpec
from workers.transports import LocalTransport, Transport

VM = "local-cpu-0-w0"
CONTAINER = "iris-worker"
ROUNDS = 3  # each round kills the follower once and the stream child once
LINES_BETWEEN_KILLS = 150
WAIT_S = 30.0
# The chatty task: a numbered line every millisecond or so, until the test says stop.
CHATTY = """
import os, sys, time
i = 0
while not os.path.exists(sys.argv[1]) and i < 200000:
    print(f"n={i} chatty", flush=True)
    i += 1
    time.sleep(0.001)
"""

Line = tuple[str, str]
FollowerFinder = Callable[[ChildProcess], list[psutil.Process]]


def container_lines(path: Path) -> list[Line]:
    out = []
    for raw in path.read_bytes().splitlines():
        out.append((raw[:30].decode(), raw[31:].decode()))
    return out


def written(path: Path) -> list[Line]:
    return [(str(r["ts"]), str(r["line"])) for r in read_records(path)]


def descendants(child: ChildProcess, match: Callable[[list[str]], bool]) -> list[psutil.Process]:
    found = []
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process(child.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE and match(proc.cmdline()):
                    found.append(proc)
    return found


def local_followers(child: ChildProcess) -> list[psutil.Process]:
    """The local cluster's `logs` command, forked by the stream child: found by its name, not its argv."""
    return processes.followers_under(child.pid)


def ssh_clients(child: ChildProcess) -> list[psutil.Process]:
    return descendants(child, lambda argv: bool(argv) and Path(argv[0]).name == "ssh")


@contextlib.contextmanager
def chatty_cluster(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A cluster whose CPU host runs the chatty task; yields (state_dir, stop marker)."""
    stop = tmp_path / "stop-chatty"
    with running_local_cluster(tmp_path) as (address, state_dir, _popen):
        client = Client(address)
        try:
            job_id = client.launch("chatty", [*python_argv(CHATTY), str(stop)])
            log = state_dir / "vms" / VM / f"{CONTAINER}.log"
            wait_for(lambda: log.exists() and b"n=10 chatty" in log.read_bytes(), WAIT_S, "the chatty task")
            try:
                yield state_dir, stop
            finally:
                stop.touch()
                client.wait_finished(job_id, WAIT_S)
        finally:
            client.close()


class KilledStream:
    """A stream child on one file, SIGKILLed and restarted as the test says."""

    def __init__(self, run_dir: Path, args: StreamSpec, followers: FollowerFinder) -> None:
        self.run_dir, self.args, self.followers = run_dir, args, followers
        self.path = run_dir / "logs" / "vms" / f"{VM}.jsonl"
        self.child = self._start()

    def _start(self) -> ChildProcess:
        child = ChildProcess(self.run_dir, self.args).start()
        child.wait_message(Kind.READY, WAIT_S)
        return child

    def _more_lines(self) -> None:
        target = len(written(self.path)) + LINES_BETWEEN_KILLS
        wait_for(lambda: len(written(self.path)) >= target, WAIT_S, f"{LINES_BETWEEN_KILLS} more records")

    def kill_follower(self) -> None:
        self._more_lines()
        [old] = wait_for(lambda: self.followers(self.child), WAIT_S, "the follower")
        old.kill()
        wait_for(lambda: [p for p in self.followers(self.child) if p.pid != old.pid], WAIT_S, "a new follower")

    def kill_child(self) -> None:
        self._more_lines()
        self.child.kill()
        self.child.close()
        self.child = self._start()

    def finish(self, source: Path) -> dict[str, Any]:
        wait_for(lambda: written(self.path) == container_lines(source), WAIT_S, "the stream to catch up")
        assert self.child.stop() == ChildExit.OK
        stats: dict[str, Any] = self.child.wait_message(Kind.STATS, 1).body
        self.child.close()
        return stats


def kill_and_resume(tmp_path: Path, transport_for: Callable[[Path], Transport], followers: FollowerFinder) -> None:
    with chatty_cluster(tmp_path) as (state_dir, stop):
        run_dir, source = tmp_path / "run", state_dir / "vms" / VM / f"{CONTAINER}.log"
        args = stream_spec(transport_for(state_dir), VM, CONTAINER, "127.0.0.1", backoff=FAST_BACKOFF)
        stream = KilledStream(run_dir, args, followers)
        try:
            for _ in range(ROUNDS):
                stream.kill_follower()
                stream.kill_child()
            stop.touch()
            wait_for(lambda: b"task_exited" in source.read_bytes(), WAIT_S, "the task to finish")
            stats = stream.finish(source)
        finally:
            stream.child.close()
    records = read_records(stream.path)
    validate(records)
    assert [r["seq"] for r in records] == list(range(len(records)))
    chatty = [text for _, text in written(stream.path) if text.endswith(" chatty")]
    numbers = [int(text.split()[-2].removeprefix("n=")) for text in chatty]
    assert numbers == list(range(len(numbers))) and len(numbers) > ROUNDS * 2 * LINES_BETWEEN_KILLS
    events = stream.child.events()
    assert [e for e in events if e["event"] == "stream_gap"] == []
    resumed = [e for e in events if e["event"] == "stream_resumed"]
    assert len(resumed) >= 2 * ROUNDS, resumed  # one per reconnect and per restart, each overlapped
    assert all(e["end_seq"] == e["start_seq"] + 1 and e["replayed"] >= 1 for e in resumed), resumed
    assert stats["gaps"] == 0


def test_embedded_follower_and_stream_child_killed_give_every_line_once_and_no_gap(tmp_path: Path) -> None:
    kill_and_resume(tmp_path, lambda state_dir: LocalTransport(state_dir=str(state_dir)), local_followers)


def test_ssh_client_and_stream_child_killed_give_every_line_once_and_no_gap(tmp_path: Path, sshd: Sshd) -> None:
    def over_ssh(state_dir: Path) -> Transport:
        # What `docker logs` is on a real VM: the embedded follower, run by sshd.
        remote = (
            f"cd {REPO_ROOT} && {sys.executable} -m local_cluster logs --state-dir {state_dir} "
            f"--follow --timestamps {{since}} {VM} {{container}}"
        )
        return sshd.transport(remote)

    kill_and_resume(tmp_path, over_ssh, ssh_clients)
    wait_for(lambda: not remote_followers(sshd), 10, "no follower left under sshd")


def remote_followers(sshd: Sshd) -> list[psutil.Process]:
    found = []
    for proc in sshd.session_tree():
        with contextlib.suppress(psutil.Error):
            if "local_cluster" in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


# -- a follower that really loses lines --------------------------------------------------

DROPPED = 3


def fake_followers(child: ChildProcess) -> list[psutil.Process]:
    return descendants(child, lambda argv: str(FOLLOWER) in argv)


def test_a_follower_that_drops_lines_on_resume_gives_a_gap_naming_the_missing_range(tmp_path: Path) -> None:
    state, run = tmp_path / "state", tmp_path / "run"
    state.mkdir()
    log = state / f"{CONTAINER}.log"
    log.write_bytes(seq_lines(0, 20))
    transport = local_transport(state, "--drop-on-resume", str(DROPPED))
    args = stream_spec(transport, VM, CONTAINER, backoff=FAST_BACKOFF)
    stream = KilledStream(run, args, fake_followers)
    try:
        wait_for(lambda: len(written(stream.path)) == 20, WAIT_S, "the first 20 records")
        [old] = wait_for(lambda: fake_followers(stream.child), WAIT_S, "the follower")
        with open(log, "ab") as handle:
            handle.write(seq_lines(20, 30))
        old.kill()  # it may have shown some of the new lines: the resume starts after them
        wait_for(lambda: written(stream.path)[-1][1] == "seq=29 payload", WAIT_S, "the last record")
        assert stream.child.stop() == ChildExit.OK
        stats = stream.child.wait_message(Kind.STATS, 1).body
    finally:
        stream.child.close()
    numbers = [int(text.split()[0].removeprefix("seq=")) for _, text in written(stream.path)]
    [gap] = stream.child.events("stream_gap")
    start, end = numbers[gap["start_seq"]], numbers[gap["end_seq"]]
    # The lines really lost (the drop began with the replayed one, already on disk) are
    # exactly those strictly between the gap's bounds.
    assert set(range(30)) - set(numbers) == set(range(start + 1, end)) and end - start == DROPPED, (gap, numbers)
    assert numbers == [*range(start + 1), *range(end, 30)] and gap["end_seq"] == gap["start_seq"] + 1
    assert (gap["start"], gap["end"], gap["reason"]) == (ts(start).decode(), ts(end).decode(), "no_overlap")
    assert stats["gaps"] == 1 and stream.child.events("stream_resumed") == []
