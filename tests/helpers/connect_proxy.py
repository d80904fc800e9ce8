"""A loopback HTTP proxy in front of a real Iris controller that answers 404 for chosen methods,
or forwards a method's first call and then hangs up without answering (a reply lost in a
tunnel that dropped), or refuses every call as a controller with auth refuses a bad token,
or sends one method to another server.

    python -m tests.helpers.connect_proxy --upstream http://127.0.0.1:PORT --deny iris.cluster.ControllerService/X
    python -m tests.helpers.connect_proxy --upstream URL --lose-first-reply iris.cluster.ControllerService/X
    python -m tests.helpers.connect_proxy --upstream URL --unauthenticated   (401 + Connect body; GET /health passes)
    python -m tests.helpers.connect_proxy --upstream URL --route finelog.logging.LogService/FetchLogs=http://LOGS
    python -m tests.helpers.connect_proxy --upstream URL --log-server-address HOST:PORT  (ListEndpoints' answer)

It prints its own URL on stdout once it listens (the readiness handshake), forwards every
other request unchanged, and exits on SIGTERM. It lets a test show what iris-smoke does when
a real controller lacks a method (a newer or older Iris), with everything else real.
"""

import argparse
import contextlib
import http.server
import json
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


UNAUTHENTICATED = b'{"code": "unauthenticated", "message": "invalid bearer token"}'
LIST_ENDPOINTS = "iris.cluster.EndpointService/ListEndpoints"
REPO_ROOT = Path(__file__).resolve().parents[2]
READY_S = 10.0


def handler(
    upstream: str,
    denied: set[str],
    lose_first: set[str],
    refuse: bool = False,
    routes: dict[str, str] | None = None,
    log_server_address: str = "",
) -> type[http.server.BaseHTTPRequestHandler]:
    lost: set[str] = set()
    routes = routes or {}

    class Forward(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
            if self.path.lstrip("/") in denied:
                self._answer(404, b"404 page not found", "text/plain")
                return
            if refuse and method == "POST":
                self._answer(401, UNAUTHENTICATED, "application/json")
                return
            if log_server_address and self.path.lstrip("/") == LIST_ENDPOINTS:
                endpoint = {"name": "/system/log-server", "address": log_server_address}
                self._answer(200, json.dumps({"endpoints": [endpoint]}).encode(), "application/json")
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
            method_name = self.path.lstrip("/")
            target = routes.get(method_name, upstream) + self.path
            request = urllib.request.Request(target, data=body or None, headers=headers, method=method)
            try:
                with _OPENER.open(request, timeout=30) as reply:
                    if method_name in lose_first and method_name not in lost:
                        lost.add(method_name)  # the upstream did the work; its answer never arrives
                        self.close_connection = True
                        return
                    self._answer(reply.status, reply.read(), reply.headers.get("Content-Type", ""))
            except urllib.error.HTTPError as exc:
                self._answer(exc.code, exc.read(), exc.headers.get("Content-Type", ""))

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


@contextlib.contextmanager
def running(upstream: str, *flags: str) -> Iterator[str]:
    """The proxy as a process of its own; its URL once it listens. Ended (SIGTERM, bounded wait) on the way out."""
    popen = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.connect_proxy", "--upstream", upstream, *flags],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO_ROOT, start_new_session=True,
    )  # fmt: skip
    try:
        assert popen.stdout is not None
        ready, _, _ = select.select([popen.stdout], [], [], READY_S)
        url = popen.stdout.readline().decode().strip() if ready else ""
        assert url.startswith("http://"), "the proxy printed no URL"
        yield url
    finally:
        popen.terminate()
        popen.wait(timeout=READY_S)
        if popen.stdout is not None:
            popen.stdout.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--deny", action="append", default=[])
    parser.add_argument("--lose-first-reply", action="append", default=[])
    parser.add_argument("--unauthenticated", action="store_true")
    parser.add_argument("--route", action="append", default=[], help="METHOD=URL")
    parser.add_argument("--log-server-address", default="")
    args = parser.parse_args()
    routes = {k: v.rstrip("/") for k, _, v in (r.partition("=") for r in args.route)}
    forward = handler(args.upstream.rstrip("/"), set(args.deny), set(args.lose_first_reply), args.unauthenticated,
                      routes, args.log_server_address)  # fmt: skip
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
