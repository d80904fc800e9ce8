"""A token this run holds reaches no log line, no message to the supervisor and no run file, even when
a controller quotes it back in an error (a misconfigured proxy echoing the request's headers)."""

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.iris import files_holding
from tests.helpers.supervisor_proc import run_argv, started

TOKEN = "tok-5f1e2d3c4b5a69788796a5b4c3d2e1f0"
RUN_EXIT_S = 60.0


class EchoingController(http.server.BaseHTTPRequestHandler):
    """`/health` is fine; every call is refused with an error that quotes the Authorization header."""

    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(200, b'{"status":"ok"}')

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        echoed = f"bad request header: Authorization: {self.headers.get('Authorization')}"
        self._answer(400, echoed.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def echoing_controller() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoingController)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_token_quoted_back_by_the_controller_is_redacted_everywhere(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    config = tmp_path / "run.toml"
    config.write_text(f'[iris]\ntoken_file = "{token_file}"\n')
    with echoing_controller() as url:
        argv = run_argv("echo", tmp_path / "runs", "--cluster", "iris", "--controller", url, "--config", str(config),
                        "--tests", "simple", "--timeout", "30", "--discovery-interval", "1")  # fmt: skip
        with started(argv, tmp_path, "echo") as sup:
            code = sup.wait_exit(RUN_EXIT_S)
            output = sup.output.read_text()
    assert code != 0, output[-2000:]
    events = (sup.run_dir / "events.jsonl").read_text()
    assert "bad request header: Authorization: Bearer <redacted>" in events, events[-3000:]
    assert TOKEN not in output
    assert files_holding(sup.run_dir, TOKEN) == []
