"""A port forward for tests: listen on TCP, relay every connection to a TCP address or a Unix socket.

    python -m tests.helpers.tcp_forward --listen 127.0.0.1:PORT --to HOST:PORT
    python -m tests.helpers.tcp_forward --listen 127.0.0.1:PORT --to unix:/abs/path

What `ssh -L` or `kubectl port-forward` is to a run's `[iris] tunnel_command`, without a remote
host: one listening port, and each accepted connection relayed byte for byte to the target, both
directions, half-closes passed on. The `unix:` form lets it carry a port across network namespaces
(a Unix socket path crosses them; see /work/shared/design/real-iris.md), so it also serves as the
one way out of a namespace that sees nothing else.

It prints nothing when ready: a run's `/health` through it is the handshake, as with ssh. Like
ssh with ExitOnForwardFailure, a port it cannot bind is one line on stderr naming the cause
(`Address already in use`) and exit 1; a target it cannot reach is a line on stderr per
connection (the accepted connection is closed), and it keeps listening. SIGTERM ends it (exit 0),
and every relayed connection with it.
"""

import argparse
import signal
import socket
import sys
import threading
from types import FrameType

BUFFER_BYTES = 65536
CONNECT_TIMEOUT_S = 5.0


def _target(text: str) -> tuple[int, str | tuple[str, int]]:
    """`unix:/abs/path` or `HOST:PORT`, as (address family, address)."""
    if text.startswith("unix:"):
        return socket.AF_UNIX, text.removeprefix("unix:")
    host, _, port = text.rpartition(":")
    return socket.AF_INET, (host, int(port))


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until EOF or an error, then pass the half-close on (or close both on an error)."""
    try:
        while data := source.recv(BUFFER_BYTES):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue


def _relay(client: socket.socket, family: int, address: str | tuple[str, int]) -> None:
    upstream = socket.socket(family, socket.SOCK_STREAM)
    try:
        upstream.settimeout(CONNECT_TIMEOUT_S)
        upstream.connect(address)
        upstream.settimeout(None)
    except OSError as exc:
        print(f"tcp_forward: connect to {address} failed: {exc}", file=sys.stderr, flush=True)
        upstream.close()
        client.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    upstream.close()
    client.close()


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> int:
    parser = argparse.ArgumentParser(prog="tcp_forward")
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    parser.add_argument("--to", required=True, metavar="HOST:PORT|unix:/path")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    host, _, port = args.listen.rpartition(":")
    family, address = _target(args.to)
    try:
        # SO_REUSEADDR (create_server's default): a forward reopened on the same port binds
        # though the connections of the one before it linger in TIME_WAIT.
        server = socket.create_server((host, int(port)))
    except OSError as exc:
        print(f"tcp_forward: cannot listen on {args.listen}: {exc.strerror}", file=sys.stderr, flush=True)
        return 1
    with server:
        while True:
            try:
                client, _ = server.accept()
            except ConnectionError as exc:  # the client gave up before we accepted: not our end
                print(f"tcp_forward: accept: {exc}", file=sys.stderr, flush=True)
                continue
            threading.Thread(target=_relay, args=(client, family, address), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
