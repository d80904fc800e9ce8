"""A loopback HTTP proxy in front of a real Iris controller, to show what iris-smoke does when
the controller lacks a method, a reply is lost, or the log server goes away, with everything
else real.

    python -m tests.helpers.connect_proxy --upstream http://127.0.0.1:PORT [flags]

Flags (each may be combined with the others):
  --deny METHOD              answer `404 page not found` for METHOD (e.g.
                             iris.cluster.EndpointService/ListEndpoints), as an Iris lacking it would
  --lose-first-reply METHOD  forward METHOD's first call, then hang up without answering (a reply
                             lost in a tunnel that dropped)
  --hang-first-reply METHOD  forward METHOD's first call and never answer it (a reply stuck until the
                             caller's timeout), for at most HANG_S
  --ingress                  forward as a front-end hop (an ingress, a load balancer) does: with
                             `X-Forwarded-For: <client>`. An Iris with auth then trusts no network
                             location and wants a token (its loopback trust is for direct peers only)
  --route METHOD=URL         send METHOD to another server, e.g. FetchLogs to the real log server: the
                             layout of an older Iris whose controller served its logs itself, where
                             the fallback to the controller's address works
  --log-server-address ADDR  answer ListEndpoints with this log server address (e.g. host:port)
  --refuse METHOD=CODE       answer METHOD with the Connect error CODE (`{"code": CODE, "message": ...}`
                             at that code's HTTP status: permission_denied is 403), and forward nothing
                             of it: e.g. LaunchJob refused to an identity with Iris's read-only
                             `dashboard` role, which may call everything else
  --delay METHOD=SECONDS     forward METHOD after waiting SECONDS (a slow controller: `SELECT 1` slower
                             than a limit)
  --drop-slice-host INDEX    leave out of ListWorkers' answer the worker that is host INDEX of its slice
                             (`tpu-worker-id`): a slice that registered one worker short
  --drop-attribute KEY       leave attribute KEY out of the first worker ListWorkers lists that has it
  --exec-stdout TEXT         answer ExecInContainer with TEXT as the command's stdout (the real answer's
                             exit code and stderr kept): an exec that returns the wrong output
  --empty-profile            answer ProfileTask with no profile data (the real answer's error kept)
  --drop-log-level LEVEL     FetchLogs (any route) answers LEVEL's entries (e.g. WARNING) without their level,
                             as a log service that lost it does (proto3: an absent level is UNKNOWN)
  --ignore-min-level         FetchLogs is forwarded without its `minLevel`: every level comes back
  --corrupt-workdir-files    flip the first byte of every workdir file a LaunchJob carries
                             (`entrypoint.workdirFiles`) before Iris sees it: a file that arrives damaged
  --log-proxy                open a second listener that forwards to the real log server; the controller's
                             `/proxy/system.log-server/` route is served through it, and the ListEndpoints
                             `/system/log-server` answer is rewritten to name it. SIGUSR1 then makes that
                             log server go away: its listening socket and every connection it has open are
                             closed (new connections are refused, and the proxy route answers 502, as a
                             controller whose endpoint is unreachable does); the controller port stays
  --require-proxy-token SECRET_FILE
                             be IAP in front of Iris: every request (both listeners, `/health` too) needs
                             `Proxy-Authorization: Bearer <HS256 JWT signed with the secret in the file,
                             not expired>` (tests/helpers/mint_proxy_token.py mints one); else 401 with a
                             text body `Invalid IAP credentials: <why>`, as IAP answers. Proxy-Authorization
                             is never forwarded (only Content-Type and Authorization are)

The real log server is what the upstream's ListEndpoints names at start (Iris 0.2.227 runs it
in-process on a port of its own; its controller port does not serve `finelog.*`).

Readiness handshake on stdout: the controller URL on the first line; with --log-proxy, the log
listener's URL on the second; after SIGUSR1, `log_server_gone` once it is closed. Every other
request is forwarded unchanged. SIGTERM ends it. A test starts one with `running()` (its URL) or
`running_proxy()` (the process, to make its log server go away).
"""

import argparse
import base64
import contextlib
import dataclasses
import http.server
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from tests.helpers import mint_proxy_token
from tests.helpers.helper_process import ready_line, running_module

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
LIST_ENDPOINTS = "iris.cluster.EndpointService/ListEndpoints"
LOG_SERVER = "/system/log-server"
GONE = "log_server_gone"
UPSTREAM_TIMEOUT_S = 30.0
HANG_S = 60.0  # a hung reply waits this long at most for its caller to give up
LOG_PROXY_ROUTE = "/proxy/system.log-server/"  # the controller's route to its log server
LIST_WORKERS = "iris.cluster.ControllerService/ListWorkers"
EXEC_IN_CONTAINER = "iris.cluster.ControllerService/ExecInContainer"
PROFILE_TASK = "iris.cluster.ControllerService/ProfileTask"
FETCH_LOGS = "finelog.logging.LogService/FetchLogs"  # on the controller's proxy route or the log server
LAUNCH_JOB = "iris.cluster.ControllerService/LaunchJob"
# The Connect protocol's HTTP status for each error code (connectrpc.com/docs/protocol#error-codes).
CONNECT_STATUS = {
    "canceled": 499, "unknown": 500, "invalid_argument": 400, "deadline_exceeded": 504, "not_found": 404,
    "already_exists": 409, "permission_denied": 403, "resource_exhausted": 429, "failed_precondition": 400,
    "aborted": 409, "out_of_range": 400, "unimplemented": 501, "internal": 500, "unavailable": 503,
    "data_loss": 500, "unauthenticated": 401,
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ProxyGate:
    """--require-proxy-token: IAP's part, admitting a request only with a valid proxy token."""

    secret: bytes

    def refusal(self, headers: Any) -> tuple[int, bytes, str] | None:
        scheme, _, token = str(headers.get("Proxy-Authorization", "")).partition(" ")
        why = mint_proxy_token.refusal(token if scheme.lower() == "bearer" else "", self.secret, time.time())
        return (401, f"Invalid IAP credentials: {why}".encode(), "text/html") if why else None


@dataclasses.dataclass
class Routes:
    """What the controller listener does with each call; the log listener only forwards."""

    upstream: str
    denied: set[str] = dataclasses.field(default_factory=set)
    lose_first: set[str] = dataclasses.field(default_factory=set)
    hang_first: set[str] = dataclasses.field(default_factory=set)
    ingress: bool = False
    routes: dict[str, str] = dataclasses.field(default_factory=dict)  # method -> URL
    log_server_address: str = ""  # ListEndpoints' answer, made up
    log_url: str = ""  # our log listener, put into ListEndpoints' real answer (--log-proxy)
    lost: set[str] = dataclasses.field(default_factory=set)
    refused: dict[str, str] = dataclasses.field(default_factory=dict)  # method -> Connect error code
    gate: ProxyGate | None = None
    delays: dict[str, float] = dataclasses.field(default_factory=dict)  # method -> seconds
    drop_slice_host: int | None = None
    drop_attribute: str = ""
    exec_stdout: str | None = None
    empty_profile: bool = False
    drop_log_level: str = ""  # e.g. WARNING
    ignore_min_level: bool = False

    corrupt_workdir_files: bool = False

    def rewrite_request(self, method: str, body: bytes) -> bytes:
        if self.ignore_min_level and method.endswith(FETCH_LOGS) and body:
            request = json.loads(body)
            request.pop("minLevel", None)
            return json.dumps(request).encode()
        if self.corrupt_workdir_files and method == LAUNCH_JOB:
            return self.corrupt_files(body)
        return body

    def made_up(self, method: str) -> tuple[int, bytes, str] | None:
        """The answer given without asking upstream, if any: (status, body, content type)."""
        if method in self.denied:
            return 404, b"404 page not found", "text/plain"
        if method in self.refused:
            return refusal(method, self.refused[method])
        if self.log_server_address and method == LIST_ENDPOINTS:
            endpoint = {"name": LOG_SERVER, "address": self.log_server_address}
            return 200, json.dumps({"endpoints": [endpoint]}).encode(), "application/json"
        return None

    @staticmethod
    def corrupt_files(body: bytes) -> bytes:
        request = json.loads(body)
        files = (request.get("entrypoint") or {}).get("workdirFiles") or {}
        for name, encoded in files.items():
            data = bytearray(base64.b64decode(encoded))
            data[:1] = bytes([data[0] ^ 0xFF]) if data else b""
            files[name] = base64.b64encode(bytes(data)).decode()
        return json.dumps(request).encode()

    def rewrite(self, method: str, data: bytes) -> bytes:
        if self.drop_log_level and method.endswith(FETCH_LOGS):
            reply = json.loads(data)
            for entry in reply.get("entries") or []:
                if entry.get("level") == f"LOG_LEVEL_{self.drop_log_level}":
                    del entry["level"]
            return json.dumps(reply).encode()
        if method == LIST_WORKERS and (self.drop_slice_host is not None or self.drop_attribute):
            return self.rewrite_workers(data)
        if method == EXEC_IN_CONTAINER and self.exec_stdout is not None:
            return json.dumps(json.loads(data) | {"stdout": self.exec_stdout}).encode()
        if method == PROFILE_TASK and self.empty_profile:
            reply = json.loads(data)
            reply.pop("profileData", None)
            return json.dumps(reply).encode()
        if not (self.log_url and method == LIST_ENDPOINTS):
            return data
        reply = json.loads(data)
        for endpoint in reply.get("endpoints") or []:
            if endpoint.get("name") == LOG_SERVER:
                endpoint["address"] = self.log_url
        return json.dumps(reply).encode()

    def rewrite_workers(self, data: bytes) -> bytes:
        reply = json.loads(data)
        workers = reply.get("workers") or []
        attributes = [(w.get("metadata") or {}).get("attributes") or {} for w in workers]
        if self.drop_slice_host is not None:
            host = str(self.drop_slice_host)
            keep = [_attribute_text(a.get("tpu-worker-id")) != host for a in attributes]
            reply["workers"] = [w for w, k in zip(workers, keep, strict=True) if k]
        if self.drop_attribute:
            holder = next((a for a in attributes if self.drop_attribute in a), None)
            if holder is not None:
                del holder[self.drop_attribute]
        return json.dumps(reply).encode()


def _attribute_text(value: Any) -> str:
    """An attribute as Iris writes it (`{"stringValue": "2"}` or `{"intValue": "2"}`), as text."""
    if not isinstance(value, dict):
        return ""
    return str(value.get("stringValue", value.get("intValue", "")))


def refusal(method: str, code: str) -> tuple[int, bytes, str]:
    """A Connect error answer, as Iris gives one: its code's HTTP status and a `{"code", "message"}` body."""
    message = f"{method.rsplit('/', 1)[-1]}: refused by the test proxy ({code})"
    return CONNECT_STATUS[code], json.dumps({"code": code, "message": message}).encode(), "application/json"


def refused_of(specs: list[str]) -> dict[str, str]:
    """`--refuse METHOD=CODE` flags as {method: code}; an unknown code is a usage error."""
    refused = {}
    for spec in specs:
        method, _, code = spec.partition("=")
        if code not in CONNECT_STATUS:
            raise SystemExit(f"--refuse {spec}: CODE must be one of {', '.join(CONNECT_STATUS)}")
        refused[method] = code
    return refused


def handler(routes: Routes) -> type[http.server.BaseHTTPRequestHandler]:
    class Forward(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self, http_method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            method = self.path.lstrip("/")
            gated = routes.gate.refusal(self.headers) if routes.gate is not None else None
            if gated is not None:
                self._answer(*gated)
                return
            answer = routes.made_up(method)
            if answer is not None:
                self._answer(*answer)
                return
            body = routes.rewrite_request(method, body)
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            if routes.ingress:
                headers["X-Forwarded-For"] = self.client_address[0]
            url = routes.routes.get(method, routes.upstream) + self.path
            if routes.log_url and self.path.startswith(LOG_PROXY_ROUTE):
                url = routes.log_url + self.path.removeprefix(LOG_PROXY_ROUTE.rstrip("/"))
            request = urllib.request.Request(url, data=body or None, headers=headers, method=http_method)
            if method in routes.delays:
                time.sleep(routes.delays[method])
            try:
                with _OPENER.open(request, timeout=UPSTREAM_TIMEOUT_S) as reply:
                    if method in routes.lose_first | routes.hang_first and method not in routes.lost:
                        routes.lost.add(method)  # the upstream did the work; its answer never arrives
                        self.close_connection = True
                        if method in routes.hang_first:
                            self._hold()
                        return
                    data = routes.rewrite(method, reply.read())
                    self._answer(reply.status, data, reply.headers.get("Content-Type", ""))
            except urllib.error.HTTPError as exc:
                self._answer(exc.code, exc.read(), exc.headers.get("Content-Type", ""))
            except urllib.error.URLError as exc:  # the far end refused: a gateway's answer
                self._answer(502, f"upstream unreachable: {exc.reason}".encode(), "text/plain")

        def _hold(self) -> None:
            """Say nothing until the caller closes its end (its timeout), within HANG_S."""
            self.connection.settimeout(HANG_S)
            with contextlib.suppress(OSError):
                self.rfile.read(1)

        def _answer(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self._forward("POST")

        def do_GET(self) -> None:
            self._forward("GET")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Forward


class Listener(http.server.ThreadingHTTPServer):
    """A threading HTTP server that knows its open connections, so it can drop them all."""

    def __init__(self, handler_class: type[http.server.BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler_class)
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def go_away(self) -> None:
        """Stop accepting, close the port (connects are refused), then cut every open connection."""
        self.shutdown()
        self.server_close()
        with self.lock:
            open_now = list(self.connections)
        for sock in open_now:
            # shutdown, not close: the handler thread still owns the descriptor and closes it.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        print(GONE, flush=True)


def log_server_of(upstream: str) -> str:
    """The real log server's URL, as the upstream's endpoint registry names it."""
    body = json.dumps({"prefix": LOG_SERVER, "exact": True}).encode()
    request = urllib.request.Request(
        f"{upstream}/{LIST_ENDPOINTS}", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with _OPENER.open(request, timeout=UPSTREAM_TIMEOUT_S) as reply:
        (endpoint,) = json.loads(reply.read())["endpoints"]
    address = str(endpoint["address"])
    return address if "://" in address else f"http://{address}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--deny", action="append", default=[])
    parser.add_argument("--lose-first-reply", action="append", default=[])
    parser.add_argument("--hang-first-reply", action="append", default=[])
    parser.add_argument("--ingress", action="store_true")
    parser.add_argument("--route", action="append", default=[], help="METHOD=URL")
    parser.add_argument("--log-server-address", default="")
    parser.add_argument("--log-proxy", action="store_true")
    parser.add_argument("--refuse", action="append", default=[], help="METHOD=CODE")
    parser.add_argument("--require-proxy-token", default="", metavar="SECRET_FILE")
    parser.add_argument("--delay", action="append", default=[], help="METHOD=SECONDS")
    parser.add_argument("--drop-slice-host", type=int, default=None)
    parser.add_argument("--drop-attribute", default="")
    parser.add_argument("--exec-stdout", default=None)
    parser.add_argument("--empty-profile", action="store_true")
    parser.add_argument("--drop-log-level", default="")
    parser.add_argument("--ignore-min-level", action="store_true")
    parser.add_argument("--corrupt-workdir-files", action="store_true")
    args = parser.parse_args()
    upstream = args.upstream.rstrip("/")
    routes = Routes(
        upstream,
        denied=set(args.deny),
        lose_first=set(args.lose_first_reply),
        hang_first=set(args.hang_first_reply),
        ingress=args.ingress,
        routes={k: v.rstrip("/") for k, _, v in (r.partition("=") for r in args.route)},
        log_server_address=args.log_server_address,
        refused=refused_of(args.refuse),
        delays={k: float(v) for k, _, v in (d.partition("=") for d in args.delay)},
        drop_slice_host=args.drop_slice_host,
        drop_attribute=args.drop_attribute,
        exec_stdout=args.exec_stdout,
        empty_profile=args.empty_profile,
        drop_log_level=args.drop_log_level.upper(),
        ignore_min_level=args.ignore_min_level,
        corrupt_workdir_files=args.corrupt_workdir_files,
    )
    if args.require_proxy_token:
        routes.gate = ProxyGate(Path(args.require_proxy_token).read_bytes().strip())
    server = Listener(handler(routes))
    logs = Listener(handler(Routes(log_server_of(upstream), gate=routes.gate))) if args.log_proxy else None

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    def log_server_goes_away(_signum: int, _frame: FrameType | None) -> None:
        if logs is not None:  # shutdown() waits for the log listener's loop: not in a signal handler
            threading.Thread(target=logs.go_away, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, log_server_goes_away)
    print(server.url, flush=True)
    if logs is not None:
        routes.log_url = logs.url
        threading.Thread(target=logs.serve_forever, daemon=True).start()
        print(logs.url, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


@dataclasses.dataclass
class RunningProxy:
    popen: "subprocess.Popen[bytes]"
    url: str
    log_url: str  # "" without --log-proxy

    def _line(self, what: str) -> str:
        return ready_line(self.popen, what)

    def log_server_goes_away(self) -> None:
        """SIGUSR1, then the proxy's word that the log listener and its connections are closed."""
        self.popen.send_signal(signal.SIGUSR1)
        assert self._line(GONE) == GONE


@contextlib.contextmanager
def running(upstream: str, *flags: str) -> Iterator[str]:
    """The proxy as a process of its own; its URL once it listens. Ended (SIGTERM, bounded wait) on the way out."""
    with running_proxy(upstream, *flags) as proxy:
        yield proxy.url


@contextlib.contextmanager
def running_proxy(upstream: str, *flags: str) -> Iterator[RunningProxy]:
    """A proxy in front of `upstream`, ready (its URLs read); terminated and reaped after."""
    with running_module("tests.helpers.connect_proxy", "--upstream", upstream, *flags) as popen:
        proxy = RunningProxy(popen, "", "")
        proxy.url = proxy._line("URL")
        proxy.log_url = proxy._line("log URL") if "--log-proxy" in flags else ""
        yield proxy


if __name__ == "__main__":
    sys.exit(main())
