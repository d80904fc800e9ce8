"""Bounded calls: a reply that cannot outgrow its byte cap or its call's time, whatever the peer sends.

Two facts of the HTTP stack make a per-read timeout and `reply.data` unsafe against a broken
or hostile peer (both seen against a fake controller on loopback):
- urllib3's `Timeout` applies to each socket read, so a reply dripped one byte a second never
  trips it: a 2 s call was still reading after 25 s. The status line and headers are read the
  same way (http.client reads them line by line).
- `reply.data` reads a body whole, however long: an endless chunked body took a run to 10 GB.

So each call runs under a `CallLimit`: one deadline for connect, headers and body. A watchdog
timer shuts the call's socket down when it passes, which ends a blocked read at once wherever
it is (a header line, a chunk, TLS); the connection classes below hand the socket to the
current call's limit when they start reading the answer (`getresponse`). The body is read in
pieces up to a byte cap (`read_body`), so a reply never costs more than its cap in memory.
A call ended either way closes its connection: a half-read one never goes back to the pool.
"""

import contextlib
import socket
import threading
import time
from typing import Any, NamedTuple

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse, HTTPResponse

# A body is read this much at a time: one piece past the cap is all a reply can cost.
READ_CHUNK_BYTES = 64 * 1024
MIN_CALL_S = 0.01

_current = threading.local()


class CallLimit:
    """One call's deadline, enforced on its socket by a watchdog thread; a context manager.

    The lock orders the watchdog against the call's end: once `__exit__` has run, the socket
    may be back in the pool serving another call, and the watchdog leaves it alone.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = max(MIN_CALL_S, seconds)
        self.at = time.monotonic() + self.seconds
        self.fired = False
        self._sock: socket.socket | None = None
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True  # a child's exit never waits for a watchdog

    def __enter__(self) -> "CallLimit":
        _current.limit = self
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        _current.limit = None
        with self._lock:
            self._done = True
        self._timer.cancel()

    def left(self) -> float:
        return max(MIN_CALL_S, self.at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        """The socket this call reads its answer from (shut at once if the time is already up)."""
        with self._lock:
            self._sock = sock
            if self.fired and not self._done:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            if self._sock is not None:
                _shut(self._sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for a TLS socket (whose override drops its SSL object
    # under a read that another thread is blocked in); the owner closes the descriptor later.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _watch_current(sock: Any) -> None:
    limit: CallLimit | None = getattr(_current, "limit", None)
    if limit is not None and isinstance(sock, socket.socket):
        limit.watch(sock)


# urllib3's own getresponse overrides http.client's with its own response type (and the same ignore).
class BoundedHTTPConnection(HTTPConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]
        _watch_current(self.sock)
        return super().getresponse()


class BoundedHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]
        _watch_current(self.sock)
        return super().getresponse()


class _BoundedPool(HTTPConnectionPool):
    ConnectionCls = BoundedHTTPConnection


class _BoundedTLSPool(HTTPSConnectionPool):
    ConnectionCls = BoundedHTTPSConnection


class BoundedPoolManager(urllib3.PoolManager):
    """A PoolManager whose connections put the current `CallLimit`'s watchdog on their socket."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_classes_by_scheme = {"http": _BoundedPool, "https": _BoundedTLSPool}


class Body(NamedTuple):
    data: bytes  # at most the cap
    whole: bool  # False: the reply was longer than the cap (data is its start)


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: Body


def read_body(reply: BaseHTTPResponse, cap: int) -> Body:
    """Up to `cap` bytes of the reply's body, read a piece at a time; never more than cap + 1 held."""
    declared = str(reply.headers.get("Content-Length", ""))
    if declared.isascii() and declared.isdigit() and int(declared) > cap:
        return Body(b"", False)  # said up front: not a byte of it is worth reading
    parts: list[bytes] = []
    size = 0
    while size <= cap:
        piece = reply.read(min(READ_CHUNK_BYTES, cap + 1 - size))
        if not piece:
            return Body(b"".join(parts), True)
        parts.append(piece)
        size += len(piece)
    return Body(b"".join(parts)[:cap], False)
