"""A stream child's subscription to the run's log reader (`workers.log_reader`): the wire, both ends.

An Iris stream used to fork a follower of its own (`workers.logservice_follow`, ~9 MiB PSS
each, mostly the HTTP client it imports after the fork). Now one reader per run polls the
log service for every key and hands each stream its key's bytes over a Unix socket; the
stream child reads them exactly as it read a follower's stdout (docker-style lines and
`#cursor` markers), so framing, dedupe, cursor sidecars and gaps are unchanged.

The socket is SOCK_SEQPACKET in Linux's abstract namespace (no file to clean up, no path
length limit; the name carries a random part the supervisor chose). The reader accepts only
peers of its own uid (SO_PEERCRED). Each message is one type byte and a body:
- stream -> reader, once: SUBSCRIBE, JSON `{"key", "since", "cursor"}` (the resume point a
  follower took as `--since`/`--cursor`);
- reader -> stream: DATA, bytes as a follower printed them (at most MAX_DATA_BYTES each);
  END, `<exit code>\\n<stderr>`: how a follower would have ended (`follower_exit`), after which
  the reader closes. A stream that stops shuts its writing side down; the reader answers END 0.
A socket closed without END (the reader died) ends the subscription as CALL_FAILED: the stream
backs off and subscribes again, by cursor, to the reader the supervisor restarted.

Standard library only: the stream child is preloaded in the supervisor.
"""

import contextlib
import json
import os
import select
import socket
import struct
import time
from dataclasses import dataclass

from workers.stream.connection import OnData
from workers.stream.follower_exit import FollowerExit

SUBSCRIBE = b"s"
DATA = b"d"
END = b"e"
MAX_DATA_BYTES = 64 * 1024  # a SEQPACKET message must fit the socket's send buffer whole
RECV_BYTES = MAX_DATA_BYTES + 1 + 4096  # never less than a message: a short recv truncates it
GONE = "log reader: the subscription ended without a word (reader restarted or gone)"
_UCRED = struct.Struct("3i")  # pid, uid, gid


def abstract_address(name: str) -> str:
    """The socket's name in the abstract namespace (a leading NUL)."""
    return "\0" + name


def new_socket() -> socket.socket:
    return socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)


def peer_pid_uid(sock: socket.socket) -> tuple[int, int]:
    pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return pid, uid


@dataclass(frozen=True)
class Subscribe:
    key: str  # a log-service key: /system/controller, /system/worker/<id>
    since: str | None  # a fixed-width timestamp: replay from it, inclusive
    cursor: int | None  # with since: resume exactly after this store row

    def encode(self) -> bytes:
        return SUBSCRIBE + json.dumps({"key": self.key, "since": self.since, "cursor": self.cursor}).encode()

    @classmethod
    def decode(cls, message: bytes) -> "Subscribe":
        """ValueError for anything but a SUBSCRIBE of the right shape."""
        if not message.startswith(SUBSCRIBE):
            raise ValueError("not a subscription")
        found = json.loads(message[1:])
        key, since, cursor = found["key"], found["since"], found["cursor"]
        if not isinstance(key, str) or not (since is None or isinstance(since, str)):
            raise ValueError("bad key or since")
        if not (cursor is None or (isinstance(cursor, int) and not isinstance(cursor, bool))):
            raise ValueError("bad cursor")
        return cls(key, since, cursor)


def end_message(code: int, stderr: str) -> bytes:
    return END + f"{int(code)}\n".encode() + stderr.encode("utf-8", "backslashreplace")


class Subscription:
    """The stream child's end, seen as the child sees a follower (`connection.Connection`)."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock, self.pid = sock, pid
        self.started_at = time.monotonic()
        self.out_open, self.err_open, self.delivered = True, False, False
        self.returncode: int | None = None
        self._stderr = ""

    @classmethod
    def open(cls, address: str, request: Subscribe) -> "Subscription":
        """Connect and subscribe; OSError when no reader listens (yet): the stream backs off."""
        sock = new_socket()
        try:
            sock.connect(address)
            sock.sendall(request.encode())
            pid, _uid = peer_pid_uid(sock)
        except OSError:
            sock.close()
            raise
        return cls(sock, pid)

    @property
    def out_fd(self) -> int:
        return self.sock.fileno()

    @property
    def err_fd(self) -> int:
        return -1  # none: an ending comes as END

    def read_stdout(self) -> bytes:
        try:
            message = self.sock.recv(RECV_BYTES)
        except ConnectionResetError:
            message = b""
        if message.startswith(DATA):
            return message[1:]
        if message.startswith(END):
            code, _, text = message[1:].partition(b"\n")
            self._ended(int(code), text.decode("utf-8", "backslashreplace"))
        else:
            self._ended(FollowerExit.CALL_FAILED, GONE)
        return b""

    def _ended(self, code: int, stderr: str) -> None:
        self.out_open = False
        if self.returncode is None:
            self.returncode, self._stderr = code, stderr

    def read_stderr(self) -> None:
        self.err_open = False

    def close_stdin(self) -> None:
        """Done with it: the reader answers END 0 and closes."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def read_until_eof(self, timeout_s: float, on_stdout: OnData) -> None:
        end = time.monotonic() + timeout_s
        while self.out_open and (left := end - time.monotonic()) > 0:
            readable, _, _ = select.select([self.sock], [], [], left)
            if readable and (data := self.read_stdout()):
                on_stdout(data)

    def end(self, exit_wait_s: float, on_stdout: OnData) -> int:
        """Unsubscribe, take what is still on its way (bounded), close; the ending's code."""
        self.close_stdin()
        self.read_until_eof(exit_wait_s, on_stdout)
        self.sock.close()
        if self.returncode is None:
            self.returncode = FollowerExit.OK
        return self.returncode

    def stderr_text(self) -> str:
        return self._stderr


def reader_name(run_id: str) -> str:
    """A fresh abstract name for a run's reader: the run's id and a random part (two runs never meet)."""
    return f"iris-smoke/{run_id}/logs/{os.urandom(8).hex()}"
