"""The iris_log transport: `workers.logservice_follow` against the real Iris, and a stream child through it.

Expected output is computed from a FetchLogs of the same key: every entry in seq order,
one line per text line, each at max(its millisecond, the one before it) (rows of one key
can step back a few ms in seq order; the follower never prints time going backwards).
"""

import contextlib
import dataclasses
import functools
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from common.child_exit import ChildExit
from common.messages import Kind
from tests.helpers import processes
from tests.helpers.forked_child import REPO_ROOT, ChildProcess
from tests.helpers.iris import IrisCluster, post, running_iris_cluster
from tests.helpers.waiting import wait_for
from tests.streams.conftest import FAST_BACKOFF, count_lines, read_records, stream_spec, validate
from workers.hosts import Role, VmHost
from workers.logservice_follow import entry_lines, format_ms, since_ms
from workers.stream.spec import StreamSpec
from workers.transports import FOLLOWER_ENTRYPOINT, FOLLOWER_NAME, IrisLogTransport, TransportConfigError, TransportKind

CONTROLLER_KEY = "/system/controller"
FETCH_LOGS = "finelog.logging.LogService/FetchLogs"
DOCKER_LINE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}000000Z .*")
SINCE = "2026-12-01T17:53:49.511000000Z"
WAIT_S = 30.0
EXIT_S = 5.0
KILLS = 2  # twice each: a resume from a stream that itself resumed
LOAD_ROUNDS = 300
LOAD_INTERVAL_S = 0.02
KILL_AFTER_LINES = 20
PUSH_GROUPS = 20
NL = b"\n"

Line = tuple[str, str]  # (timestamp, text)


# -- unit -------------------------------------------------------------------------------


def test_timestamps_are_fixed_width_milliseconds() -> None:
    assert format_ms(1796147629511) == SINCE
    assert format_ms(0) == "1970-01-01T00:00:00.000000000Z"
    assert format_ms(1796147629005) == "2026-12-01T17:53:49.005000000Z"
    assert since_ms(SINCE) == 1796147629511
    assert since_ms("2026-12-01T17:53:49.511999999Z") == 1796147629511  # a finer since: its millisecond


@pytest.mark.parametrize(
    ("data", "texts"),
    [
        ("hello", ["hello"]),
        ("hello\n", ["hello"]),
        ("a\nb\n", ["a", "b"]),
        ("a\n\nb", ["a", "", "b"]),
        ("a\n\n", ["a", ""]),
        ("", [""]),
        ("caf\u00e9 \u2713", ["caf\u00e9 \u2713"]),
    ],
)
def test_an_entry_becomes_one_line_per_text_line_at_its_time(data: str, texts: list[str]) -> None:
    expected = "".join(f"{SINCE} {text}\n" for text in texts).encode()
    assert entry_lines(1796147629511, data) == expected


WORKER = VmHost("worker-iris-cpu-20261201-1757-6d4ccac4-0-6ea7509f", 0, Role.WORKER, "127.0.0.1")
CONTROLLER = VmHost("iris-controller", 0, Role.CONTROLLER, "127.0.0.1")


@pytest.mark.parametrize(
    ("host", "key"), [(WORKER, f"/system/worker/{WORKER.vm}"), (CONTROLLER, CONTROLLER_KEY)], ids=["worker", "ctl"]
)
@pytest.mark.parametrize("since", [None, SINCE])
def test_iris_log_argv(host: VmHost, key: str, since: str | None) -> None:
    transport = IrisLogTransport("http://127.0.0.1:1234", command_prefix=("follow",))
    before = time.time()
    argv = transport.argv(host, "ignored-container", since, 100.0)
    deadline = float(argv[-1])
    assert before + 99.999 <= deadline <= time.time() + 100.001  # printed to the millisecond
    head = ["follow", "--controller", "http://127.0.0.1:1234", "--key", key, "--poll-interval", "0.5"]
    assert argv[:-2] == [
        *head,
        "--exit-on-stdin-close",
        "--cursor-markers",
        *([] if since is None else ["--since", since]),
    ]
    assert argv[-2] == "--deadline-unix"
    assert "ignored-container" not in argv


def test_iris_log_with_token_and_default_prefix() -> None:
    transport = IrisLogTransport("https://iris.example:443", token_file="/t")
    assert isinstance(transport, IrisLogTransport) and transport.kind is TransportKind.IRIS_LOG
    argv = transport.argv(WORKER, "iris-worker", None, 5.0)
    assert argv[:2] == ["--controller", "https://iris.example:443"]
    assert transport.forked == (FOLLOWER_ENTRYPOINT, FOLLOWER_NAME)
    assert "--token-file=/t" in argv


@pytest.mark.parametrize(
    "url", ["127.0.0.1:1234", "ftp://x", "http://a b", "http://x\n", " http://x", "-http://x", "", "file:///etc"]
)
def test_a_bad_controller_url_is_refused(url: str) -> None:
    with pytest.raises(TransportConfigError):
        IrisLogTransport(url)


@pytest.mark.parametrize("options", [{"poll_interval_s": 0}, {"poll_interval_s": True}, {"token_env": "A-B"}])
def test_bad_iris_log_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(TransportConfigError):
        IrisLogTransport("http://x:1", **options)


# -- helpers for the real Iris ------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisCluster]:
    """One real Iris for the module's tests: each reads the keys Iris writes, from their start, or pushes
    rows to a key of its own; the jobs they launch run `true` and end by themselves."""
    with running_iris_cluster(tmp_path_factory.mktemp("iris")) as cluster:
        yield cluster


def log_server(cluster: IrisCluster) -> str:
    reply = post(
        cluster.url, "iris.cluster.EndpointService/ListEndpoints", {"prefix": "/system/log-server", "exact": True}
    )
    address: str = reply["endpoints"][0]["address"]
    return address


def fetch_all(server: str, key: str) -> list[dict[str, Any]]:
    entries, cursor = [], 0
    while True:
        body = {"source": key, "matchScope": "MATCH_SCOPE_EXACT", "cursor": str(cursor), "maxLines": 1000}
        page = post(server, FETCH_LOGS, body).get("entries", [])
        entries += page
        cursor = max([cursor, *(int(e["seq"]) for e in page)])
        if len(page) < 1000:
            return entries


def expected_lines(entries: list[dict[str, Any]]) -> tuple[list[Line], int]:
    """The lines a follower from the start prints, and how many entries stepped back in time."""
    lines: list[Line] = []
    last = backsteps = 0
    for entry in sorted(entries, key=lambda e: int(e["seq"])):
        ms = int(entry["timestamp"]["epochMs"])
        backsteps += ms < last
        last = max(last, ms)
        text = entry.get("data", "").removesuffix("\n")
        lines += [(format_ms(last), part) for part in text.split("\n")]
    return lines, backsteps


def parse(raw: list[bytes]) -> list[Line]:
    assert all(DOCKER_LINE.fullmatch(line) for line in raw), raw[:5]
    return [(line[:30].decode(), line[31:].decode()) for line in raw]


def healthy_worker(cluster: IrisCluster) -> str:
    def found() -> str | None:
        workers = post(cluster.url, "iris.cluster.ControllerService/ListWorkers", {}).get("workers", [])
        ids = [w["workerId"] for w in workers if w.get("healthy")]
        return ids[0] if ids else None

    return str(wait_for(found, WAIT_S, "a healthy Iris worker"))


def launch_jobs(cluster: IrisCluster, count: int) -> None:
    """Work for the cluster, so that the controller and the worker log."""
    for _ in range(count):
        body = {
            "name": f"/smoke/logs-{uuid.uuid4().hex[:10]}",
            "replicas": 1,
            "entrypoint": {"runCommand": {"argv": ["true"]}},
            "resources": {"cpuMillicores": 100, "memoryBytes": "104857600"},
        }
        post(cluster.url, "iris.cluster.ControllerService/LaunchJob", body)


def push_awkward_entries(server: str, key: str, i: int) -> None:
    """Entries the way a busy Iris can write them, and worse: equal texts in one millisecond,
    rows a few ms older than the one before them, entries of two lines. A push takes ~1 s."""
    now, rows = time.time_ns() // 1_000_000, []
    for group in range(PUSH_GROUPS):
        ms, name = now + 2 * group, f"{i}.{group}"
        rows += [(ms, "same text"), (ms, "same text"), (ms - 3, f"straggler {name}"), (ms, f"multi {name}\ntwo\n")]
    entries = [{"timestamp": {"epochMs": str(ms)}, "source": "stdout", "data": data} for ms, data in rows]
    post(server, "finelog.logging.LogService/PushLogs", {"key": key, "entries": entries})


@contextlib.contextmanager
def busy(cluster: IrisCluster, server: str, synthetic_key: str) -> Iterator[None]:
    """Until the block ends (and at most LOAD_ROUNDS times each): launch jobs; push awkward entries."""
    done = threading.Event()

    def repeat(work: Callable[[int], None]) -> None:
        for i in range(LOAD_ROUNDS):
            if done.wait(LOAD_INTERVAL_S):
                return
            work(i)

    threads = [
        threading.Thread(target=repeat, args=(lambda _i: launch_jobs(cluster, 1),), daemon=True),
        threading.Thread(target=repeat, args=(functools.partial(push_awkward_entries, server, synthetic_key),)),
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        done.set()
        for thread in threads:
            thread.join(WAIT_S)


@contextlib.contextmanager
def follower(*args: str) -> Iterator["subprocess.Popen[bytes]"]:
    argv = [sys.executable, "-m", "workers.logservice_follow", *args]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT)
    try:
        yield proc
    finally:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(EXIT_S)


def read_lines(proc: "subprocess.Popen[bytes]", count: int, timeout_s: float = WAIT_S) -> list[bytes]:
    """The first `count` lines of the follower's stdout, read within `timeout_s`."""
    assert proc.stdout is not None
    fd, data, end = proc.stdout.fileno(), b"", time.monotonic() + timeout_s
    while data.count(NL) < count:
        left = end - time.monotonic()
        assert left > 0, f"{data.count(NL)} of {count} lines within {timeout_s} s"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 1 << 20)
            assert chunk, f"the follower closed stdout after {data.count(NL)} of {count} lines"
            data += chunk
    return data.splitlines()[:count]


def exit_code_within(proc: "subprocess.Popen[bytes]", timeout_s: float) -> tuple[int, float]:
    started = time.monotonic()
    code = proc.wait(timeout_s)
    return code, time.monotonic() - started


# -- the follower program against the real Iris -------------------------------------------


def test_follower_prints_the_log_service_as_docker_would(cluster: IrisCluster, tmp_path: Path) -> None:
    worker_key = f"/system/worker/{healthy_worker(cluster)}"
    launch_jobs(cluster, 3)
    server = log_server(cluster)
    for key, stop in ((CONTROLLER_KEY, "stdin"), (worker_key, "sigterm")):
        wanted, _ = expected_lines(wait_for(functools.partial(fetch_all, server, key), WAIT_S, f"entries of {key}"))
        with follower("--controller", cluster.url, "--key", key, "--exit-on-stdin-close") as proc:
            assert parse(read_lines(proc, len(wanted))) == wanted
            assert proc.stdin is not None
            if stop == "stdin":
                proc.stdin.close()
            else:
                proc.send_signal(signal.SIGTERM)
            code, took = exit_code_within(proc, EXIT_S)
            assert proc.stderr is not None
            assert (code, proc.stderr.read()) == (0, b""), key
            assert took < 1.0, f"{stop} took {took:.2f} s"

    # Resume is inclusive: every line at the since millisecond again, then the rest in order.
    wanted, _ = expected_lines(fetch_all(server, CONTROLLER_KEY))
    since = wanted[len(wanted) // 2][0]
    rest = wanted[next(i for i, (ts, _) in enumerate(wanted) if ts >= since) :]
    with follower("--controller", cluster.url, "--key", CONTROLLER_KEY, "--since", since) as proc:
        assert parse(read_lines(proc, len(rest))) == rest

    # Pushed by the test: an entry of two lines, and rows older than the one before them. A
    # controller without ListEndpoints (here the log server itself: 404) serves the logs itself.
    key, t = f"/iris-smoke-test/{uuid.uuid4().hex[:8]}", since_ms(SINCE)
    rows = [(t - 3, "z"), (t, "a\nb\n"), (t - 2, "straggler"), (t, "c"), (t + 1, "d")]
    entries = [{"timestamp": {"epochMs": str(ms)}, "source": "stdout", "data": data} for ms, data in rows]
    post(server, "finelog.logging.LogService/PushLogs", {"key": key, "entries": entries})
    wanted = [(format_ms(t - 3), "z"), *((SINCE, text) for text in ("a", "b", "straggler", "c"))]
    wanted.append((format_ms(t + 1), "d"))
    with follower("--controller", server, "--key", key, "--poll-interval", "0.05") as proc:
        assert parse(read_lines(proc, 6)) == wanted
    # From since: everything at or after it, the straggler after the first row at it included; then
    # the exit at the deadline. Its 3 s hold a Python start and a fetch on a loaded host (with 1 s,
    # the follower was seen to start past its deadline and print nothing).
    deadline = time.time() + 3.0
    argv = ("--controller", server, "--key", key, "--since", SINCE, "--deadline-unix", f"{deadline:.3f}")
    with follower(*argv) as proc:
        assert parse(read_lines(proc, 5)) == wanted[1:]
        code, _ = exit_code_within(proc, WAIT_S)
        assert code == 0 and time.time() - deadline < 1.0, "the follower outlived its deadline"


def test_follower_fails_in_one_line_when_iris_is_not_there(tmp_path: Path) -> None:
    with follower("--controller", "http://127.0.0.1:9", "--key", CONTROLLER_KEY) as proc:
        code, _ = exit_code_within(proc, WAIT_S)
        assert proc.stderr is not None and proc.stdout is not None
        err = proc.stderr.read().decode()
        assert code == 1 and proc.stdout.read() == b""
        assert err.count("\n") == 1 and "proxy/system.log-server" in err and "Traceback" not in err, err


# -- a stream child following the real Iris, its follower killed under it -------------------


def followers_of(child: ChildProcess) -> list[psutil.Process]:
    """The live follower under a stream child: forked (its name), or exec'd by a test's wrapper (its argv)."""
    found = processes.followers_under(child.pid)
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process(child.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "workers.logservice_follow" in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
    return found


def written(path: Path) -> list[Line]:
    return [(str(r["ts"]), str(r["line"])) for r in read_records(path)]


@dataclasses.dataclass
class Stream:
    key: str
    args: StreamSpec
    path: Path
    child: ChildProcess | None = None

    def start(self, run_dir: Path, ready: bool = True) -> None:
        self.child = ChildProcess(run_dir, self.args, name=f"stream:{self.args.host.vm}").start()
        if ready:
            self.ready()

    def ready(self) -> None:
        """The running child's READY (at once once seen): every child started is seen ready."""
        assert self.child is not None
        self.child.wait_message(Kind.READY, WAIT_S)

    def close(self) -> None:
        if self.child is not None:
            self.child.close()

    def new_lines(self, count: int = KILL_AFTER_LINES) -> None:
        """Once the running child is READY, `count` more lines in its file (from that child: the
        ones before it are dead)."""
        self.ready()
        # Complete records counted by their newlines, not parsed: polled every 20 ms over files of
        # thousands of records, parsing took the CPU the children being killed and restarted need.
        target = count_lines(self.path) + count
        wait_for(lambda: count_lines(self.path) >= target, WAIT_S, f"new lines of {self.key}")

    def kill_follower(self) -> None:
        """Once at least KILL_AFTER_LINES new lines arrived, SIGKILL the follower and wait for the next one."""
        self.new_lines()
        self.kill_follower_now()

    def kill_child(self) -> None:
        """Once at least KILL_AFTER_LINES new lines arrived, SIGKILL the stream child and start another.
        Its READY is waited for by this stream's next step (new lines, a kill, the drain), so that the
        other streams go on while it starts (a Python child takes seconds to start on a loaded machine)."""
        self.new_lines()
        self.kill_child_now(ready=False)

    def kill_follower_now(self) -> None:
        assert self.child is not None
        child = self.child
        [old] = wait_for(lambda: followers_of(child), WAIT_S, f"the follower of {self.key}")
        old.kill()
        wait_for(lambda: [p for p in followers_of(child) if p.pid != old.pid], WAIT_S, f"a new follower of {self.key}")

    def kill_child_now(self, ready: bool = True) -> None:
        assert self.child is not None
        self.child.kill()
        self.child.close()
        self.start(self.child.run_dir, ready)

    def events_of(self, event: str = "stream_resumed") -> list[dict[str, Any]]:
        assert self.child is not None
        return [e for e in self.child.events(event) if e.get("vm") == self.args.host.vm]

    def caught_up(self, server: str) -> bool:
        return written(self.path) == expected_lines(fetch_all(server, self.key))[0]


def three_streams(transport: IrisLogTransport, worker: str, run_dir: Path, stack: contextlib.ExitStack) -> list[Stream]:
    """Started: the controller's stream, `worker`'s, and one of a key Iris does not write to (the test
    pushes awkward entries there); each closed when `stack` is."""
    vms = run_dir / "logs" / "vms"

    def spec(vm: str, role: Role = Role.WORKER) -> StreamSpec:
        return StreamSpec(VmHost(vm, 0, role, vm), "iris", transport, backoff=FAST_BACKOFF)

    streams = [
        Stream(CONTROLLER_KEY, spec("iris-ctl", Role.CONTROLLER), run_dir / "logs" / "controller.jsonl"),
        Stream(f"/system/worker/{worker}", spec(worker), vms / f"{worker}.jsonl"),
        Stream("/system/worker/synthetic-worker", spec("synthetic-worker"), vms / "synthetic-worker.jsonl"),
    ]
    for stream in streams:
        stream.start(run_dir)
        stack.callback(stream.close)
    return streams


def drained(streams: list[Stream]) -> dict[str, dict[str, Any]]:
    """Each stream drained (SIGUSR1: finish what is in flight, then exit 0): its STATS by key."""
    stats = {}
    for stream in streams:
        stream.ready()
        assert stream.child is not None
        os.kill(stream.child.pid, signal.SIGUSR1)
        assert stream.child.wait(WAIT_S) == ChildExit.OK
        stats[stream.key] = stream.child.wait_message(Kind.STATS, 1).body
    return stats


def every_row_once_resumed_by_cursor(stream: Stream, server: str, stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Checks a stream killed under load: the rows of its key each once, in order, no gap; every
    connection after the first resumed by cursor, and at least KILLS resumes, all by cursor.
    Its `stream_connected` events."""
    records = read_records(stream.path)
    validate(records)
    wanted, backsteps = expected_lines(fetch_all(server, stream.key))
    got = written(stream.path)
    assert got == wanted[: len(got)], stream.key
    assert [r["seq"] for r in records] == list(range(len(records)))
    assert stats["gaps"] == 0 and stream.events_of("stream_gap") == [], stream.key
    connected = stream.events_of("stream_connected")
    assert connected[0]["cursor"] is None, stream.key
    assert all(isinstance(e["cursor"], int) for e in connected[1:]), (stream.key, connected)
    # (A stream_resumed is logged just after the batch it settles is written: a SIGKILL may fall in between.)
    resumed = stream.events_of()
    assert len(resumed) >= KILLS and {e["by"] for e in resumed} == {"cursor"}, (stream.key, resumed)
    skipped = sum(e["replayed"] for e in resumed)
    print(f"{stream.key}: {len(got)} lines, {skipped} written lines replayed, {backsteps} steps back in time")
    return connected


def test_stream_resumes_by_cursor_when_its_follower_or_itself_is_killed(cluster: IrisCluster, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with contextlib.ExitStack() as stack:
        worker, server = healthy_worker(cluster), log_server(cluster)
        streams = three_streams(IrisLogTransport(cluster.url, poll_interval_s=0.2), worker, run_dir, stack)
        with busy(cluster, server, streams[-1].key):
            for _ in range(KILLS):
                for stream in streams:
                    stream.kill_follower()
                    stream.kill_child()
            for stream in streams:
                stream.new_lines()  # the last resume is settled by a new line
        for stream in streams:
            wait_for(functools.partial(stream.caught_up, server), WAIT_S, f"{stream.key} caught up")
        stats = drained(streams)
        for stream in streams:
            connected = every_row_once_resumed_by_cursor(stream, server, stats[stream.key])
            assert len(connected) > 2 * KILLS, stream.key


def test_a_row_older_than_the_resume_lookback_is_delivered_across_resumes(cluster: IrisCluster, tmp_path: Path) -> None:
    """Rows 5 s older than the one before them, pushed after a resume: by since they were lost."""
    run_dir, key = tmp_path / "run", "/system/worker/late-worker"
    server, t0 = log_server(cluster), time.time_ns() // 1_000_000
    transport = IrisLogTransport(cluster.url, poll_interval_s=0.1)
    args = stream_spec(transport, "late-worker", "iris", backoff=FAST_BACKOFF)
    stream = Stream(key, args, run_dir / "logs" / "vms" / "late-worker.jsonl")
    stream.start(run_dir)
    try:
        push_rows(server, key, t0, range(10))
        wait_for(lambda: len(written(stream.path)) == 10, WAIT_S, "the first 10 rows")
        stream.kill_follower_now()
        post_late_row(server, key, t0 + 9 - 5000, "late after a follower kill")
        push_rows(server, key, t0, range(10, 20))
        wait_for(lambda: len(written(stream.path)) == 21, WAIT_S, "21 rows")
        stream.kill_child_now()
        post_late_row(server, key, t0 + 19 - 5000, "late after a stream child kill")
        push_rows(server, key, t0, range(20, 30))
        wait_for(lambda: len(written(stream.path)) == 32, WAIT_S, "32 rows")
        # Logged just after the batch it settles is written.
        resumed = wait_for(lambda: stream.events_of()[1:] and stream.events_of(), WAIT_S, "two resumes")
    finally:
        stream.close()
    texts = [text for _, text in written(stream.path)]
    rows = [f"row {i}" for i in range(30)]
    late = ["late after a follower kill", "late after a stream child kill"]
    assert texts == [*rows[:10], late[0], *rows[10:20], late[1], *rows[20:]]
    assert written(stream.path)[10] == (format_ms(t0 + 9), late[0])  # printed at the time of the row before it
    # Both resumes by cursor; `replayed` may be non-zero when the kill landed between a
    # batch's write and its saved mark (those lines are dropped by count: the texts above
    # show each row exactly once).
    assert [e["by"] for e in resumed] == ["cursor", "cursor"]
    assert stream.events_of("stream_gap") == []


def saved_cursor(sidecar: Path) -> int:
    """The cursor a stream child saved, or 0 while there is none (removed after a lost cursor)."""
    try:
        return int(orjson.loads(sidecar.read_bytes())["cursor"])
    except FileNotFoundError:
        return 0


def post_late_row(server: str, key: str, epoch_ms: int, text: str) -> None:
    entries = [{"timestamp": {"epochMs": str(epoch_ms)}, "source": "stdout", "data": text}]
    post(server, "finelog.logging.LogService/PushLogs", {"key": key, "entries": entries})


def test_a_cursor_the_store_does_not_hold_is_a_gap_naming_the_range(cluster: IrisCluster, tmp_path: Path) -> None:
    run_dir, key = tmp_path / "run", "/system/worker/rotated-worker"
    server, t0 = log_server(cluster), time.time_ns() // 1_000_000
    transport = IrisLogTransport(cluster.url, poll_interval_s=0.1)
    args = stream_spec(transport, "rotated-worker", "iris", backoff=FAST_BACKOFF)
    stream = Stream(key, args, run_dir / "logs" / "vms" / "rotated-worker.jsonl")
    sidecar = stream.path.with_name(stream.path.name + ".cursor")
    stream.start(run_dir)
    try:
        push_rows(server, key, t0, range(10))
        wait_for(lambda: len(written(stream.path)) == 10 and sidecar.exists(), WAIT_S, "10 rows and a cursor")
        assert stream.child is not None and stream.child.stop() == ChildExit.OK
        # As if the store had been rotated: the row the cursor names is gone.
        saved = orjson.loads(sidecar.read_bytes())
        lost = saved["cursor"] + 10**12
        sidecar.write_bytes(orjson.dumps(saved | {"cursor": lost}))
        push_rows(server, key, t0, range(10, 20))
        stream.start(run_dir)
        wait_for(lambda: len(written(stream.path)) == 20, WAIT_S, "20 rows")
        [gap] = wait_for(lambda: stream.events_of("stream_gap"), WAIT_S, "the gap")
        wait_for(lambda: saved["cursor"] < saved_cursor(sidecar) < lost, WAIT_S, "a mark of a row of the store")
    finally:
        stream.close()
    assert [text for _, text in written(stream.path)] == [f"row {i}" for i in range(20)]
    assert (gap["reason"], gap["by"], gap["start_seq"], gap["end_seq"]) == ("cursor_unknown", "cursor", 9, 10)
    assert (gap["start"], gap["end"]) == (format_ms(t0 + 9), format_ms(t0 + 10))
    assert stream.events_of() == []


# -- a follower that loses rows on resume: the gap names them ------------------------------

DROPPED = 3
# The real follower, with the first DROPPED lines of a resumed connection lost on the way.
# Without --cursor-markers, so that the stream resumes by since.
LOSSY_PREFIX = [
    "sh", "-c",
    'for a; do shift; [ "$a" = --cursor-markers ] || set -- "$@" "$a"; done; '
    f'case " $* " in *" --since "*) "$@" | sed -u 1,{DROPPED}d ;; *) exec "$@" ;; esac',
    "lossy", sys.executable, "-m", "workers.logservice_follow",
]  # fmt: skip


def push_rows(server: str, key: str, t0: int, rows: range) -> None:
    entries = [{"timestamp": {"epochMs": str(t0 + i)}, "source": "stdout", "data": f"row {i}"} for i in rows]
    post(server, "finelog.logging.LogService/PushLogs", {"key": key, "entries": entries})


def test_rows_lost_across_a_resume_are_a_gap_bounded_by_the_rows_either_side(
    cluster: IrisCluster, tmp_path: Path
) -> None:
    run_dir, key = tmp_path / "run", "/system/worker/lossy-worker"
    server, t0 = log_server(cluster), time.time_ns() // 1_000_000
    push_rows(server, key, t0, range(10))
    transport = IrisLogTransport(cluster.url, poll_interval_s=0.1, command_prefix=tuple(LOSSY_PREFIX))
    spec = stream_spec(transport, "lossy-worker", "iris", backoff=FAST_BACKOFF)
    stream = Stream(key, spec, run_dir / "logs" / "vms" / "lossy-worker.jsonl")
    with ChildProcess(run_dir, spec) as child:
        stream.child = child
        wait_for(lambda: len(written(stream.path)) == 10, WAIT_S, "the first 10 rows")
        [old] = wait_for(lambda: followers_of(child), WAIT_S, "the follower")
        # Killed before the new rows exist: had it printed them all, the resume would
        # start after row 19 and there would be nothing left to lose.
        old.kill()
        push_rows(server, key, t0, range(10, 20))
        wait_for(lambda: written(stream.path)[-1:] == [(format_ms(t0 + 19), "row 19")], WAIT_S, "the last row")
        assert child.stop() == ChildExit.OK
        stats = child.wait_message(Kind.STATS, 1).body
    rows = [int(text.removeprefix("row ")) for _, text in written(stream.path)]
    [gap] = child.events("stream_gap")
    start, end = rows[gap["start_seq"]], rows[gap["end_seq"]]
    # The rows really lost (the drop began with the replayed one, already on disk) are
    # exactly those between the gap's bounds.
    assert set(range(20)) - set(rows) == set(range(start + 1, end)) and end - start == DROPPED, (gap, rows)
    assert rows == [*range(start + 1), *range(end, 20)] and gap["end_seq"] == gap["start_seq"] + 1
    assert (gap["start"], gap["end"]) == (format_ms(t0 + start), format_ms(t0 + end))
    assert gap["reason"] == "no_overlap" and stats["gaps"] == 1 and child.events("stream_resumed") == []
