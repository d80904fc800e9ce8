"""A byte relay between two socket addresses: what `ssh -L` or `kubectl port-forward` gives a user.

    python -m tests.helpers.forward --listen tcp:127.0.0.1:PORT --to unix:/path/ctl.sock
    python -m tests.helpers.forward --listen unix:/path/ctl.sock --to tcp:127.0.0.1:PORT

An address is `tcp:HOST:PORT` or `unix:/absolute/path`. A Unix socket is a path in the file
system, so it reaches across network namespaces: a relay TCP -> Unix inside a namespace and
one Unix -> TCP outside it give the namespace exactly one port of the world (tests.helpers.bastion).

Readiness handshake: `listening` on stdout once the listening socket is bound, so the first
connection a test makes is never refused (a run's `[iris] tunnel_command` ignores it: its
`/health` through the forward is the handshake). A port it cannot bind is one line on stderr
(`Address already in use`) and exit 1. Each accepted connection gets a thread that opens the
far end and copies both ways until either side closes; a far end that cannot be reached is a
line on stderr, and the accepted connection is closed at once (the caller sees a reset, as
through a dead tunnel).
SIGTERM ends the relay (exit 0) and with it every connection it carries.
"""

import argparse
import contextlib
import os
import select
import signal
import socket
import sys
import threading
from types import FrameType

READY_LINE = "listening"
CHUNK = 65536
CONNECT_TIMEOUT_S = 5.0


def parse_address(text: str) -> tuple[int, str | tuple[str, int]]:
    """`tcp:HOST:PORT` -> (AF_INET, (host, port)); `unix:/path` -> (AF_UNIX, path)."""
    scheme, _, rest = text.partition(":")
    if scheme == "unix" and rest.startswith("/"):
        return socket.AF_UNIX, rest
    host, _, port = rest.rpartition(":")
    if scheme == "tcp" and host and port.isdigit():
        return socket.AF_INET, (host, int(port))
    raise ValueError(f"an address is tcp:HOST:PORT or unix:/absolute/path, got {text!r}")


def listen(address: str) -> socket.socket:
    family, where = parse_address(address)
    server = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(where)
    server.listen(64)
    return server


def connect(address: str) -> socket.socket:
    family, where = parse_address(address)
    far = socket.socket(family, socket.SOCK_STREAM)
    far.settimeout(CONNECT_TIMEOUT_S)
    far.connect(where)
    far.settimeout(None)
    return far


def _pipe(near: socket.socket, far: socket.socket) -> None:
    """Copy both ways until one side closes; then close both (the other side sees EOF)."""
    with near, far:
        sockets = [near, far]
        while True:
            readable, _, _ = select.select(sockets, [], [])
            for sock in readable:
                try:
                    data = sock.recv(CHUNK)
                except OSError:
                    return
                if not data:
                    return
                (far if sock is near else near).sendall(data)


def _carry(near: socket.socket, to: str) -> None:
    try:
        far = connect(to)
    except OSError as exc:
        # Said as ssh says it ("channel 2: open failed: connect failed: ..."): a tunnel's stderr
        # is what a run reports when the controller never answers through it.
        print(f"forward: connect to {to} failed: {exc.strerror or exc}", file=sys.stderr, flush=True)
        near.close()
        return
    with contextlib.suppress(OSError):
        _pipe(near, far)


def serve(server: socket.socket, to: str) -> None:
    """Accept forever, one daemon thread per connection (the process's exit ends them all)."""
    while True:
        try:
            near, _ = server.accept()
        except OSError:
            return  # the listening socket was closed
        threading.Thread(target=_carry, args=(near, to), daemon=True).start()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.helpers.forward")
    parser.add_argument("--listen", required=True, help="tcp:HOST:PORT or unix:/path")
    parser.add_argument("--to", required=True, help="tcp:HOST:PORT or unix:/path")
    args = parser.parse_args(argv)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    parse_address(args.to)  # a bad --to fails now, not at the first connection
    try:
        server = listen(args.listen)
    except OSError as exc:  # one line, as ssh's ExitOnForwardFailure: `Address already in use`
        print(f"forward: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1
    print(READY_LINE, flush=True)
    try:
        serve(server, args.to)
    finally:
        server.close()
        if args.listen.startswith("unix:"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.listen.removeprefix("unix:"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
