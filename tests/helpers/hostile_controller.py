"""A Connect controller on loopback that answers chosen methods the way a broken or hostile one would.

    python -m tests.helpers.hostile_controller [--upstream URL] [--mode METHOD=MODE ...] [--workers N] [--names N]

Each `--mode` makes METHOD (`iris.cluster.ControllerService/ListWorkers`, or `health` for
`GET /health`) answer so:
  endless       200, chunked, a `{"workers":[` that never ends (until the caller hangs up)
  drip          200 with its headers at once, then the body one byte a second
  drip-headers  the status line and headers themselves one byte a second
  huge          a valid reply of HUGE_BYTES (100 MB), chunked: real Iris workers, numbered
  deep          a body nested DEEP_LEVELS (100,000) lists deep
  big-worker-id the reply as it would be, its first worker's `tpu-worker-id` 1e20
  big-epoch     the reply as it would be (ListJobs), with one more job submitted at epochMs 1e17
  fail          HTTP 500 with a proxy's HTML page, every time
  gzip-bomb     200, `Content-Encoding: gzip` unasked for: 10 KB that inflate to 10 MB
  hostile-names --names N (default NAMES_WORKERS, 100,000) workers: VALID_NAMES valid ones
                (`hostile-ok-<i>`), the others with ids no command line may take (`-oProxyCommand=x`,
                `a b`, `/..`, control and bidi characters)
  duplicate-ids the minimal Iris's one worker listed DUPLICATES times, and one other worker once
  many-workers  --workers N (default MANY_WORKERS) healthy workers `worker-many-<i>`: not hostile, a
                cluster to stream from (bench/stream_memory.py)
Every other call goes to `--upstream` (a real Iris, forwarded as tests/helpers/connect_proxy.py
does), or without one is answered by a minimal Iris of its own: `/health` ok, one healthy
CPU worker, no jobs, no autoscaler, no endpoint registry (404), empty log pages.

Readiness handshake: the URL on the first line of stdout once it listens. A hostile answer
lasts HANG_S at most. SIGTERM ends it. A test starts one with `running(...)`.
"""

import argparse
import contextlib
import copy
import gzip
import http.server
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from tests.helpers.helper_process import ready_line, running_module

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CONTROLLER = "iris.cluster.ControllerService"
LIST_WORKERS = f"{CONTROLLER}/ListWorkers"
LIST_JOBS = f"{CONTROLLER}/ListJobs"
HANG_S = 120.0  # no hostile answer outlives a test
UPSTREAM_TIMEOUT_S = 30.0
HUGE_BYTES = 100 * 1000 * 1000
DEEP_LEVELS = 100_000
BOMB_BYTES = 10 * 1000 * 1000
DRIP_S = 1.0
BIG_INT = "100000000000000000000"  # 1e20: wider than int64
BIG_EPOCH_MS = "100000000000000000"  # 1e17 ms: the year 3170843
NAMES_WORKERS = 100_000
VALID_NAMES = 3
HOSTILE_IDS = ("-oProxyCommand=x{}", "a b{}", "w{}/..", "../w{}", "w{}\x07\x1b[2J", "w\u202e{}", "W{};id")
DUPLICATES = 3
MANY_WORKERS = 128
OTHER_WORKER_ID = "worker-other-0"
# One worker as Iris 0.2.227's ListWorkers gives it (a CPU worker of a local cluster; 854 bytes compact).
WORKER: dict[str, Any] = {
    "workerId": "worker-iris-cpu-0",
    "healthy": True,
    "consecutiveFailures": 0,
    "lastHeartbeat": {"epochMs": "1796545173013"},
    "address": "127.0.0.1:38055",
    "metadata": {
        "hostname": "local", "ipAddress": "127.0.0.1", "cpuCount": 2, "memoryBytes": "1073741824000",
        "diskBytes": "107374182400", "device": {"cpu": {"variant": "cpu"}}, "tpuName": "",
        "tpuWorkerHostnames": "", "tpuWorkerId": "", "tpuChipsPerHostBounds": "", "gpuCount": 0, "gpuName": "",
        "gpuMemoryMb": 0, "gceInstanceName": "", "gceZone": "",
        "attributes": {
            "scale-group": {"stringValue": "cpu"}, "device-variant": {"stringValue": "cpu"},
            "preemptible": {"stringValue": "false"}, "pool": {"stringValue": "local-a"},
            "device-type": {"stringValue": "cpu"},
        },
        "provenance": {"treeHash": "unknown", "baseCommit": "unknown", "dirty": False, "branch": "", "builtBy": ""},
    },
    "statusMessage": "",
    "backendId": "default",
    "scaleGroup": "cpu",
}  # fmt: skip
MODES = ("endless", "drip", "drip-headers", "huge", "deep", "big-worker-id", "big-epoch", "fail", "gzip-bomb",
         "hostile-names", "duplicate-ids", "many-workers")  # fmt: skip


def hostile_names(count: int) -> dict[str, Any]:
    """hostile-names: `count` workers, all but VALID_NAMES of them with a hostile id (each distinct)."""
    ids = [f"hostile-ok-{i}" for i in range(VALID_NAMES)]
    ids += [HOSTILE_IDS[i % len(HOSTILE_IDS)].format(i) for i in range(count - VALID_NAMES)]
    return {"workers": [{"workerId": i, "healthy": True, "address": "127.0.0.1:1"} for i in ids]}


def duplicate_ids() -> dict[str, Any]:
    other = copy.deepcopy(WORKER) | {"workerId": OTHER_WORKER_ID}
    return {"workers": [*(copy.deepcopy(WORKER) for _ in range(DUPLICATES)), other]}


def many_workers(count: int) -> dict[str, Any]:
    return {"workers": [copy.deepcopy(WORKER) | {"workerId": f"worker-many-{i}"} for i in range(count)]}


def own_answer(method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """The minimal Iris's answer (status, JSON); None: a bare 404 as for a route it lacks."""
    answers: dict[str, dict[str, Any]] = {
        LIST_WORKERS: {"workers": [WORKER]},
        f"{CONTROLLER}/GetAutoscalerStatus": {"status": {}},
        LIST_JOBS: {"jobs": []},
        f"{CONTROLLER}/ListTasks": {"tasks": []},
        f"{CONTROLLER}/TerminateJob": {},
        f"{CONTROLLER}/LaunchJob": {"jobId": str(body.get("name", ""))},
        "finelog.logging.LogService/FetchLogs": {"entries": []},
    }
    found = answers.get(method)
    return (200, found) if found is not None else (404, None)


def rewrite(mode: str, reply: dict[str, Any]) -> dict[str, Any]:
    """big-worker-id and big-epoch: the reply with one out-of-range number in it."""
    reply = copy.deepcopy(reply)
    if mode == "big-worker-id":
        workers = reply.setdefault("workers", []) or [copy.deepcopy(WORKER)]
        reply["workers"] = workers
        workers[0].setdefault("metadata", {}).setdefault("attributes", {})["tpu-worker-id"] = {"stringValue": BIG_INT}
    else:
        job = {"jobId": "/someone/else", "name": "/someone/else", "state": "JOB_STATE_RUNNING",
               "submittedAt": {"epochMs": BIG_EPOCH_MS}}  # fmt: skip
        reply["jobs"] = [*(reply.get("jobs") or []), job]
    return reply


def handler(modes: dict[str, str], upstream: str, workers: int, names: int) -> type[http.server.BaseHTTPRequestHandler]:
    # Compressed once, before the server says it is ready: a test times the call, not our gzip.
    bomb = gzip.compress(b'{"workers": [' + b" " * BOMB_BYTES + b"]}") if "gzip-bomb" in modes.values() else b""

    class Hostile(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            method = self.path.lstrip("/")
            if self._hostile(method):
                return
            status, reply, content_type = self._real(method, data)
            if method in modes and status == 200:
                reply = json.dumps(rewrite(modes[method], json.loads(reply))).encode()
            self._answer(status, reply, content_type)

        def _hostile(self, method: str) -> bool:
            """Answer as METHOD's hostile mode says, if it has one."""
            hostile: dict[str, Callable[[], None]] = {
                "endless": self._endless, "drip": self._drip, "drip-headers": self._drip_headers,
                "huge": self._huge, "deep": self._deep, "fail": self._fail, "gzip-bomb": self._gzip_bomb,
                "hostile-names": lambda: self._json(hostile_names(names)),
                "duplicate-ids": lambda: self._json(duplicate_ids()),
                "many-workers": lambda: self._json(many_workers(workers)),
            }  # fmt: skip
            answer = hostile.get(modes.get(method, ""))
            if answer is None:
                return False
            self.close_connection = True
            with contextlib.suppress(OSError):  # the caller hung up: what it is supposed to do
                answer()
            return True

        def do_GET(self) -> None:
            if self._hostile(self.path.lstrip("/")):
                return
            if upstream:
                status, reply, content_type = self._forward("GET", b"")
            else:
                status, reply, content_type = 200, b'{"status": "ok"}', "application/json"
            self._answer(status, reply, content_type)

        def _real(self, method: str, data: bytes) -> tuple[int, bytes, str]:
            if upstream:
                return self._forward("POST", data)
            status, found = own_answer(method, json.loads(data or b"{}"))
            if found is None:
                return 404, b"404 page not found", "text/plain"
            return status, json.dumps(found).encode(), "application/json"

        def _forward(self, verb: str, data: bytes) -> tuple[int, bytes, str]:
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            request = urllib.request.Request(upstream + self.path, data=data or None, headers=headers, method=verb)
            try:
                with _OPENER.open(request, timeout=UPSTREAM_TIMEOUT_S) as reply:
                    return reply.status, reply.read(), reply.headers.get("Content-Type", "")
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read(), exc.headers.get("Content-Type", "")

        def _answer(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self._say_close()
            self.end_headers()
            self.wfile.write(data)

        def _say_close(self) -> None:
            """A whole reply after which we hang up says so: a client that read all of it may pool the
            connection, and would send its next call into our close. (Never on a reply the client must
            abandon unread: endless, huge, drip; there it must not pool what it did not finish.)"""
            if self.close_connection:
                self.send_header("Connection", "close")

        def _chunked(self, pieces: Iterator[bytes]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            ends = time.monotonic() + HANG_S
            for piece in pieces:
                if time.monotonic() > ends:
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")

        def _endless(self) -> None:
            piece = b'{"workerId": "w", "healthy": true},' * 2000

            def forever() -> Iterator[bytes]:
                yield b'{"workers": ['
                while True:
                    yield piece

            self._chunked(forever())

        def _huge(self) -> None:
            one = json.dumps(WORKER).encode()
            count = HUGE_BYTES // (len(one) + 8)

            def workers() -> Iterator[bytes]:
                yield b'{"workers": ['
                batch = 1000
                for start in range(0, count, batch):
                    ids = range(start, min(count, start + batch))
                    yield b",".join(one.replace(b"worker-iris-cpu-0", b"w-%08d" % i) for i in ids)
                    if start + batch < count:
                        yield b","
                yield b"]}"

            self._chunked(workers())

        def _gzip_bomb(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(bomb)))
            self._say_close()
            self.end_headers()
            self.wfile.write(bomb)

        def _json(self, reply: dict[str, Any]) -> None:
            self._answer(200, json.dumps(reply).encode(), "application/json")

        def _fail(self) -> None:
            self._answer(500, b"<html><body>502 Bad Gateway, or so</body></html>", "text/html")

        def _deep(self) -> None:
            body = b'{"workers": ' + b"[" * DEEP_LEVELS + b"]" * DEEP_LEVELS + b"}"
            self._answer(200, body, "application/json")

        def _drip(self) -> None:
            body = b'{"workers": []}' + b" " * 1_000_000
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self._drip_bytes(body)

        def _drip_headers(self) -> None:
            self._drip_bytes(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"x" * 10_000)

        def _drip_bytes(self, data: bytes) -> None:
            """One byte each DRIP_S until the caller hangs up (a write then fails) or HANG_S."""
            self.wfile.flush()
            ends = time.monotonic() + HANG_S
            for i in range(len(data)):
                if time.monotonic() > ends:
                    return
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(DRIP_S)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Hostile


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", default="")
    parser.add_argument("--mode", action="append", default=[], help="METHOD=MODE")
    parser.add_argument("--workers", type=int, default=MANY_WORKERS, help="many-workers: how many")
    parser.add_argument("--names", type=int, default=NAMES_WORKERS, help="hostile-names: how many")
    args = parser.parse_args()
    modes = {}
    for item in args.mode:
        method, _, mode = item.partition("=")
        if mode not in MODES:
            parser.error(f"--mode {item!r}: MODE must be one of {', '.join(MODES)}")
        modes[method] = mode
    answers = handler(modes, args.upstream.rstrip("/"), args.workers, args.names)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), answers)
    server.daemon_threads = True  # a hostile answer still running never holds the exit

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


@contextlib.contextmanager
def running(*modes: str, upstream: str = "", workers: int = MANY_WORKERS, names: int = NAMES_WORKERS) -> Iterator[str]:
    """The server as a process of its own, `modes` as METHOD=MODE; its URL once it listens.
    Terminated and reaped on the way out."""
    argv = [f"--mode={m}" for m in modes] + [f"--workers={workers}", f"--names={names}"]
    if upstream:
        argv.append(f"--upstream={upstream}")
    with running_module("tests.helpers.hostile_controller", *argv) as popen:
        yield ready_line(popen, "URL")


if __name__ == "__main__":
    sys.exit(main())
