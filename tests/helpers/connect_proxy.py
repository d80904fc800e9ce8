"""A loopback HTTP proxy in front of a real Iris controller that answers 404 for chosen methods,
or forwards a method's first call and then hangs up without answering (a reply lost in a
tunnel that dropped), or forwards it and never answers (a reply stuck until the caller's timeout).

    python -m tests.helpers.connect_proxy --upstream http://127.0.0.1:PORT --deny iris.cluster.ControllerService/X
    python -m tests.helpers.connect_proxy --upstream URL --lose-first-reply iris.cluster.ControllerService/X
    python -m tests.helpers.connect_proxy --upstream URL --hang-first-reply iris.cluster.ControllerService/X

It prints its own URL on stdout once it listens (the readiness handshake), forwards every
other request unchanged, and exits on SIGTERM. It lets a test show what iris-smoke does when
a real controller lacks a method (a newer or older Iris), with everything else real.
"""

import argparse
import contextlib
import http.server
import signal
import sys
import urllib.error
import urllib.request
from types import FrameType

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


HANG_S = 60.0  # a hung reply waits this long at most for its caller to give up


def handler(
    upstream: str, denied: set[str], lose_first: set[str], hang_first: set[str]
) -> type[http.server.BaseHTTPRequestHandler]:
    lost: set[str] = set()

    class Forward(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            if self.path.lstrip("/") in denied:
                self._answer(404, b"404 page not found", "text/plain")
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            request = urllib.request.Request(upstream + self.path, data=body or None, headers=headers, method=method)
            method_name = self.path.lstrip("/")
            try:
                with _OPENER.open(request, timeout=30) as reply:
                    if method_name in lose_first | hang_first and method_name not in lost:
                        lost.add(method_name)  # the upstream did the work; its answer never arrives
                        self.close_connection = True
                        if method_name in hang_first:
                            self._hold()
                        return
                    self._answer(reply.status, reply.read(), reply.headers.get("Content-Type", ""))
            except urllib.error.HTTPError as exc:
                self._answer(exc.code, exc.read(), exc.headers.get("Content-Type", ""))

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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--deny", action="append", default=[])
    parser.add_argument("--lose-first-reply", action="append", default=[])
    parser.add_argument("--hang-first-reply", action="append", default=[])
    args = parser.parse_args()
    forward = handler(args.upstream.rstrip("/"), set(args.deny), set(args.lose_first_reply), set(args.hang_first_reply))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), forward)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
