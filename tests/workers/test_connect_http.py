"""The Connect client's error mapping, against a real HTTP server on loopback.

A Connect error body (`{"code", "message"}`) is read first, whatever the status; without one,
the Connect protocol's "HTTP to error code" table applies, and only a 404 (no such route) or
`unimplemented` means the server lacks the method (`iris_api_mismatch`).
"""

import json
import socket
from collections.abc import Iterator

import pytest

from tests.helpers.http_stub import Stub, serving
from workers.controller.connect_http import ConnectClient
from workers.controller.credentials import Credentials
from workers.controller.model import ApiMismatch, ControllerError, ErrorCode

ANSWERS = {
    "/svc/Ok": (200, b'{"jobId": "/r/simple", "unknownNewField": 1}'),
    "/svc/Refused": (400, b'{"code": "failed_precondition", "message": "no group provides gpu"}'),
    "/svc/Crash": (500, b"<html>oops</html>"),
    "/svc/NotJson": (200, b"not json"),
    # Iris's TerminateJob of a job that is gone: connect-python sends NOT_FOUND as HTTP 404 with its body.
    "/svc/Gone": (404, b'{"code": "not_found", "message": "job /r/simple not found"}'),
    "/svc/Unimplemented": (501, b'{"code": "unimplemented", "message": "no such method"}'),
    "/svc/UnimplementedOn404": (404, b'{"code": "unimplemented"}'),
    "/svc/BadToken": (401, b'{"code": "unauthenticated", "message": "invalid token"}'),
    "/svc/Aborted": (409, b'{"code": "aborted", "message": "try again"}'),
    "/svc/NotAConnectCode": (401, b'{"code": "nope", "message": "x"}'),
    **{
        f"/svc/Http{status}": (status, b"<html>a proxy's page</html>")
        for status in (400, 401, 403, 408, 429, 501, 502, 503, 504)
    },
}


class _Handler(Stub):
    def do_POST(self) -> None:
        body = self.body()
        status, data = ANSWERS.get(self.path, (404, b"404 page not found"))
        if self.path == "/svc/Echo":
            status, data = (
                200,
                json.dumps({"body": json.loads(body), "auth": self.headers.get("Authorization")}).encode(),
            )
        self.answer(status, data)


@pytest.fixture
def server() -> Iterator[str]:
    with serving(_Handler) as url:
        yield url


def test_a_reply_is_parsed_and_unknown_fields_are_kept_harmlessly(server: str) -> None:
    with ConnectClient(server, Credentials(iris_token="s3cret")) as client:
        assert client.call("svc/Ok", {}, 5)["jobId"] == "/r/simple"
        echoed = client.call("svc/Echo", {"jobId": "x"}, 5)
    assert echoed == {"body": {"jobId": "x"}, "auth": "Bearer s3cret"}


@pytest.mark.parametrize(
    ("method", "code"),
    [
        ("svc/Refused", ErrorCode.FAILED_PRECONDITION),
        ("svc/Crash", ErrorCode.UNKNOWN),
        ("svc/Missing", ErrorCode.API_MISMATCH),
        ("svc/NotJson", ErrorCode.API_MISMATCH),
        ("svc/Gone", ErrorCode.NOT_FOUND),
        ("svc/Unimplemented", ErrorCode.API_MISMATCH),
        ("svc/UnimplementedOn404", ErrorCode.API_MISMATCH),
        ("svc/BadToken", ErrorCode.UNAUTHENTICATED),
        ("svc/Aborted", ErrorCode.UNKNOWN),
        ("svc/NotAConnectCode", ErrorCode.UNAUTHENTICATED),
        # Without a Connect body: the Connect protocol's HTTP-to-code table; anything else is unknown.
        ("svc/Http400", ErrorCode.INTERNAL),
        ("svc/Http401", ErrorCode.UNAUTHENTICATED),
        ("svc/Http403", ErrorCode.PERMISSION_DENIED),
        ("svc/Http408", ErrorCode.UNKNOWN),
        ("svc/Http429", ErrorCode.UNAVAILABLE),
        ("svc/Http501", ErrorCode.API_MISMATCH),
        ("svc/Http502", ErrorCode.UNAVAILABLE),
        ("svc/Http503", ErrorCode.UNAVAILABLE),
        ("svc/Http504", ErrorCode.UNAVAILABLE),
    ],
)
def test_errors_map_to_codes_and_name_the_method(server: str, method: str, code: ErrorCode) -> None:
    with ConnectClient(server) as client, pytest.raises(ControllerError) as caught:
        client.call(method, {}, 5)
    assert caught.value.code is code and caught.value.method == method
    if code is ErrorCode.API_MISMATCH:
        assert isinstance(caught.value, ApiMismatch)


def test_a_refused_connection_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ConnectClient(f"http://127.0.0.1:{port}") as client, pytest.raises(ControllerError) as caught:
        client.call("svc/Ok", {}, 2)
    assert caught.value.code is ErrorCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("method", "details"), [("svc/Gone", "job /r/simple not found"), ("svc/Aborted", "aborted: try again")]
)
def test_the_details_are_the_connect_message_and_a_code_we_lack_is_named(
    server: str, method: str, details: str
) -> None:
    with ConnectClient(server) as client, pytest.raises(ControllerError) as caught:
        client.call(method, {}, 5)
    assert caught.value.details == details
