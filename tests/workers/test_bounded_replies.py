"""ConnectClient against a hostile controller on loopback (tests/helpers/hostile_controller.py).

A reply is read up to its byte cap and within one time limit for the whole call (connect,
headers and body): an endless body is `reply_too_large` at the cap, a dripped body
`controller_timeout` at the limit, dripped headers `deadline_exceeded` (no answer) at the
limit, and the client's next call works (the abandoned connection never went back to the pool).
"""

import contextlib
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.hostile_controller import LIST_JOBS, LIST_WORKERS, running
from tests.helpers.http_stub import Stub, serving
from workers.controller.connect_http import ConnectClient
from workers.controller.model import ApiMismatch, ControllerError, ErrorCode

CAP = 1024 * 1024
CALL_S = 2.0
SLACK_S = 1.5  # a loaded two-core machine: the watchdog's thread may be late to run


@contextlib.contextmanager
def _failed_call(mode: str, cap: int = CAP) -> Iterator[tuple[ControllerError, float]]:
    """ListWorkers against a server answering it in `mode`: the error and how long it took.
    The same client's next call (ListJobs, answered normally) must work: the connection the
    failed call left was not handed back to the pool half-read."""
    with running(f"{LIST_WORKERS}={mode}") as url, ConnectClient(url, max_reply_bytes=cap) as client:
        started = time.monotonic()
        with pytest.raises(ControllerError) as caught:
            client.call(LIST_WORKERS, {}, CALL_S)
        yield caught.value, time.monotonic() - started
        assert client.call(LIST_JOBS, {}, CALL_S) == {"jobs": []}


@pytest.mark.parametrize("mode", ["endless", "huge"])
def test_a_reply_longer_than_the_cap_is_refused_at_the_cap(mode: str) -> None:
    with _failed_call(mode) as (error, took_s):
        assert error.code is ErrorCode.REPLY_TOO_LARGE and error.method == LIST_WORKERS, error
        assert str(CAP) in error.details
        assert took_s < CALL_S, took_s  # read at loopback speed up to the cap, then dropped


def test_a_dripped_body_ends_at_the_calls_time_limit() -> None:
    """Headers at once, then a byte a second: every single read is quick, the call is not."""
    with _failed_call("drip", cap=2 * 1024 * 1024) as (error, took_s):
        assert error.code is ErrorCode.CONTROLLER_TIMEOUT, error
        assert CALL_S - 0.1 <= took_s < CALL_S + SLACK_S, took_s


def test_dripped_headers_are_no_answer_within_the_limit() -> None:
    with _failed_call("drip-headers") as (error, took_s):
        assert error.code is ErrorCode.DEADLINE_EXCEEDED, error
        assert took_s < CALL_S + SLACK_S, took_s


@pytest.mark.parametrize(("mode", "status"), [("drip-headers", None), ("drip", 200), ("endless", 200)])
def test_health_is_bounded_the_same_way(mode: str, status: int | None) -> None:
    """`GET /health`: dripped headers are no answer within the limit; a status that came is the
    answer, whatever follows it (the body is read up to ERROR_BODY_BYTES, then dropped)."""
    with running(f"health={mode}") as url, ConnectClient(url) as client:
        started = time.monotonic()
        assert client.get_status("health", CALL_S) == status
        assert time.monotonic() - started < CALL_S + SLACK_S


def test_a_declared_length_over_the_cap_is_refused_unread() -> None:
    """The dripping server says its length up front: over a 64 KiB cap, nothing is read at all."""
    with _failed_call("drip", cap=64 * 1024) as (error, took_s):
        assert error.code is ErrorCode.REPLY_TOO_LARGE, error
        assert took_s < 0.5 * CALL_S, took_s


def test_json_nested_past_orjsons_limit_is_an_api_mismatch() -> None:
    with _failed_call("deep") as (error, _):
        assert isinstance(error, ApiMismatch) and error.field == "<body>", error
        assert "not JSON" in error.details and "depth" in error.details, error.details


def test_a_body_compressed_unasked_is_never_inflated() -> None:
    """`Content-Encoding: gzip` we did not ask for: 10 KB that would inflate to 10 MB (over the cap) are read as
    they are (under the cap) and are not JSON, never decompressed into memory."""
    with _failed_call("gzip-bomb") as (error, took_s):
        assert isinstance(error, ApiMismatch) and error.field == "<body>", error
        assert took_s < CALL_S, took_s


class _DripsOverTls(Stub):
    def do_POST(self) -> None:
        self.body()
        if self.path == f"/{LIST_JOBS}":
            return self.answer(200, b'{"jobs": []}')
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(30):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1.0)
        return None


def test_the_time_limit_holds_over_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The watchdog shuts a TLS socket too (an IAP front is https): a dripped body over https is
    `controller_timeout` at the limit, and the next call works."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts it as it trusts the system's CAs
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with serving(_DripsOverTls, tls) as url, ConnectClient(url) as client:
        started = time.monotonic()
        with pytest.raises(ControllerError) as caught:
            client.call(LIST_WORKERS, {}, CALL_S)
        assert caught.value.code is ErrorCode.CONTROLLER_TIMEOUT, caught.value
        assert time.monotonic() - started < CALL_S + SLACK_S
        assert client.call(LIST_JOBS, {}, CALL_S) == {"jobs": []}
