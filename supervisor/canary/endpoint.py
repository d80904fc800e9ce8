"""`/metrics` and `/healthz` over HTTP, at `[canary] listen` (IPv4 or IPv6).

`/metrics` is prometheus_client's own exposition (text, or OpenMetrics when the scraper asks
for it). `/healthz` judges the state the daemon's loop publishes after every wake (`LoopState`,
a frozen value swapped whole, so the server thread never sees half of it): 200 while the
newest run of every probe passed and started less than two of its intervals ago, 503 with the
reasons otherwise. The loop wakes at least every `HEARTBEAT_S` while serving; a state older
than `STALL_S` means the loop is wedged, and the answer is 503 `loop_stalled` however the last
run went. The server thread answers, it never decides.

A thread is allowed here and nowhere else in the supervisor because the daemon never forks
without exec: runs start with posix_spawn (fork+exec), so no child ever inherits a copy of
this thread's locks.
"""

import enum
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from common.deadline import Clock
from common.jsonshape import to_json
from common.outcome import Outcome
from supervisor.canary.config import Listen
from supervisor.canary.runs import LastRun

# The loop publishes its state at least this often while an endpoint is served...
HEARTBEAT_S = 5.0
# ...so a state older than this means the loop is wedged (a blocked call, a livelock).
STALL_S = 30.0
# A client that sends nothing for this long is dropped: one server thread serves everyone.
REQUEST_TIMEOUT_S = 10.0

# A WSGI environ is the server's (wsgiref's) dict of CGI variables and streams, not JSON.
Environ = dict[str, object]
WsgiApp = Callable[[Environ, Callable[..., object]], Iterable[bytes]]


class HealthReason(enum.StrEnum):
    LOOP_STALLED = "loop_stalled"
    NO_RUN = "no_run"
    NOT_PASSED = "not_passed"
    TOO_OLD = "too_old"


@dataclass(frozen=True)
class ProbeState:
    name: str
    interval_s: float
    last: LastRun | None


@dataclass(frozen=True)
class LoopState:
    at: float  # the loop's clock when it published this
    phase: str
    probes: tuple[ProbeState, ...]


@dataclass(frozen=True)
class LastRunBody:
    run_id: str
    outcome: Outcome
    reasons: tuple[str, ...]
    started_at: str
    duration_s: float
    age_s: float
    run_dir: str


@dataclass(frozen=True)
class ProbeHealth:
    interval_s: float
    last_run: LastRunBody | None
    healthy: bool
    reason: HealthReason | None


@dataclass(frozen=True)
class LoopHealth:
    phase: str
    age_s: float


@dataclass(frozen=True)
class Health:
    """`/healthz`'s body (serialised with common.jsonshape)."""

    healthy: bool
    reasons: tuple[str, ...]
    cluster: str
    loop: LoopHealth
    probes: dict[str, ProbeHealth]


def _probe_health(probe: ProbeState, now_unix: float) -> ProbeHealth:
    last = probe.last
    if last is None:
        return ProbeHealth(probe.interval_s, None, False, HealthReason.NO_RUN)
    age = now_unix - last.started_unix
    body = LastRunBody(
        run_id=last.run_id,
        outcome=last.outcome,
        reasons=last.reasons,
        started_at=datetime.fromtimestamp(last.started_unix, UTC).isoformat(timespec="milliseconds"),
        duration_s=last.duration_s,
        age_s=round(age, 3),
        run_dir=str(last.run_dir),
    )
    reason = None
    if last.outcome is not Outcome.PASSED:
        reason = HealthReason.NOT_PASSED
    elif age > 2 * probe.interval_s:
        reason = HealthReason.TOO_OLD
    return ProbeHealth(probe.interval_s, body, reason is None, reason)


def health(state: LoopState, now: float, now_unix: float, cluster: str) -> tuple[int, Health]:
    """The status code and body of `/healthz`, from the loop's last published state."""
    reasons: list[str] = []
    loop_age = now - state.at
    if loop_age > STALL_S:
        reasons.append(f"{HealthReason.LOOP_STALLED}: no loop wake for {loop_age:.0f} s (bound {STALL_S:g} s)")
    if not state.probes:  # the daemon's start, before the loop's first state
        reasons.append(f"{HealthReason.NO_RUN}: the loop has not published yet")
    probes: dict[str, ProbeHealth] = {}
    for probe in state.probes:
        probes[probe.name] = judged = _probe_health(probe, now_unix)
        if judged.reason is not None:
            reasons.append(f"{judged.reason}: probe {probe.name}")
    body = Health(not reasons, tuple(reasons), cluster, LoopHealth(state.phase, round(loop_age, 3)), probes)
    return (200 if not reasons else 503), body


class _Server(WSGIServer):
    allow_reuse_address = True

    def server_bind(self) -> None:
        # Not HTTPServer's: it resolves the bound address to a host name (socket.getfqdn), which
        # waits on DNS for `0.0.0.0` or `::` on a bastion without a resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "iris-smoke-canary", int(self.server_address[1])
        self.setup_environ()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every 15 s would drown the events; the scraper sees failures


class Endpoint:
    """The HTTP server thread; `publish` is the loop's only way to change what `/healthz` says."""

    def __init__(
        self, registry: CollectorRegistry, listen: Listen, cluster: str, clock: Clock = time.monotonic
    ) -> None:
        self._cluster, self._clock = cluster, clock
        self._state = LoopState(clock(), "starting", ())
        self._metrics: WsgiApp = make_wsgi_app(registry)
        server_class = _Server6 if ":" in listen.host else _Server
        self._server = server_class((listen.host, listen.port), _QuietHandler)
        self._server.set_app(self._app)
        self._thread = threading.Thread(target=self._server.serve_forever, name="endpoint", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def publish(self, state: LoopState) -> None:
        self._state = state  # one reference swap: the thread reads either the old or the new

    def _app(self, environ: Environ, start_response: Callable[..., object]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path == "/healthz":
            code, body = health(self._state, self._clock(), time.time(), self._cluster)
            status = "200 OK" if code == 200 else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
            return [orjson.dumps(to_json(body), option=orjson.OPT_INDENT_2) + b"\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: this endpoint serves /metrics and /healthz\n"]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
