"""Unary Connect calls over HTTP/1.1 with JSON bodies: the wire of a real Iris controller.

A call is `POST <base>/<package.Service>/<Method>` with `Content-Type: application/json`;
a reply is 200 with the response message as JSON, or an error status with
`{"code": "...", "message": "..."}`. One keep-alive connection pool per process
(urllib3), opened after the fork and closed with the client. Nothing is generated from
Iris's .proto files: the JSON field names we read are the contract, and anything we do
not read is ignored, so a newer Iris that adds fields changes nothing here.

Mapping to our error codes: a connection that cannot be made, is reset, or times out is
`unavailable` / `deadline_exceeded` (worth retrying). An error answer's Connect body
(`{"code", "message"}`) is read first, whatever the HTTP status: a 404 carrying
`{"code": "not_found"}` is Iris saying a job is gone, not a missing method. Only a 404
without a Connect body (no such route) or the code `unimplemented` (HTTP 501 too) means
the server lacks the method: `iris_api_mismatch`, naming it. Other answers without a
Connect body (a proxy's or a load balancer's page) get the code the Connect protocol's
"HTTP to error code" table infers from the status (HTTP_CODES), else `unknown`, with the
start of the body.
"""

import copy
import os
from pathlib import Path
from typing import Any

import orjson
import urllib3

from common import logs
from workers.controller.model import ApiMismatch, ControllerError, ErrorCode

MAX_ERROR_CHARS = 300
# The field an ApiMismatch names when the server has no such method at all.
MISSING_METHOD = "<method>"
# Connect's codes (connectrpc.com/docs/protocol#error-codes); a body with another `code` is no Connect error.
CONNECT_CODES = frozenset({
    "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
    "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
    "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
})  # fmt: skip
# The Connect protocol's "HTTP to error code" table, for answers without a Connect body
# (the same as gRPC's HTTP mapping); every other status is `unknown`. 404 and 501 (a route
# the server does not have) are API mismatches, handled before this table.
HTTP_CODES = {
    400: ErrorCode.INTERNAL,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.PERMISSION_DENIED,
    429: ErrorCode.UNAVAILABLE,
    502: ErrorCode.UNAVAILABLE,
    503: ErrorCode.UNAVAILABLE,
    504: ErrorCode.UNAVAILABLE,
}


class ConnectClient:
    def __init__(self, base_url: str, token: str = "", pool_size: int = 4) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        headers = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # retries=False: a retry is a decision for the caller's loop (with its backoff and
        # deadline), never a hidden second request that could submit a job twice.
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=pool_size, headers=headers, retries=False)
        self._owns_pool = True

    def at(self, base_url: str) -> "ConnectClient":
        """A client for another base URL (the log service) with this one's credentials and
        connection pool; the pool is closed with this client, never with the one returned."""
        other = copy.copy(self)
        other.base_url, other._owns_pool = base_url.rstrip("/"), False
        return other

    def close(self) -> None:
        if self._owns_pool:
            self._pool.clear()

    def __enter__(self) -> "ConnectClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def call(self, method: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """One unary call, e.g. `call("iris.cluster.ControllerService/ListWorkers", {}, 5.0)`."""
        url = f"{self.base_url}/{method}"
        try:
            reply = self._pool.request(
                "POST", url, body=orjson.dumps(body), timeout=urllib3.Timeout(total=max(0.01, timeout_s))
            )
        except urllib3.exceptions.NewConnectionError as exc:  # refused: urllib3 files it under timeouts
            raise ControllerError(ErrorCode.UNAVAILABLE, method, str(exc)) from None
        except urllib3.exceptions.TimeoutError as exc:
            raise ControllerError(ErrorCode.DEADLINE_EXCEEDED, method, str(exc)) from None
        except urllib3.exceptions.HTTPError as exc:  # refused, reset, DNS: the server is not there
            raise ControllerError(ErrorCode.UNAVAILABLE, method, str(exc)) from None
        if reply.status == 200:
            return _json_object(method, reply.data)
        raise _error(method, reply.status, reply.data)

    def get_status(self, path: str, timeout_s: float) -> int | None:
        """The HTTP status `GET <base>/<path>` answers (Iris's `/health`), None if there was no answer."""
        try:
            reply = self._pool.request("GET", f"{self.base_url}/{path}", timeout=urllib3.Timeout(total=timeout_s))
        except urllib3.exceptions.HTTPError:
            return None
        return int(reply.status)


def _json_object(method: str, data: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ApiMismatch(method, "<body>", f"reply is not JSON: {data[:80]!r}") from None
    if not isinstance(parsed, dict):
        raise ApiMismatch(method, "<body>", f"reply is not a JSON object: {data[:80]!r}")
    return parsed


def _connect_error(data: bytes) -> tuple[str, str] | None:
    """(code, message) of a Connect error body, or None when the body is not one."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or parsed.get("code") not in CONNECT_CODES:
        return None
    message = parsed.get("message")
    return str(parsed["code"]), message if isinstance(message, str) else ""


def _error(method: str, status: int, data: bytes) -> ControllerError:
    found = _connect_error(data)
    if found is not None:
        code, message = found
        if code == "unimplemented":
            return ApiMismatch(method, MISSING_METHOD, f"the server does not implement {method}: {message}")
        ours = ErrorCode.named(code)  # canceled, aborted, out_of_range, data_loss: unknown, named in the details
        return ControllerError(ours, method, message if ours.value == code else f"{code}: {message}")
    if status in (404, 501):
        return ApiMismatch(method, MISSING_METHOD, f"the server has no method {method} (HTTP {status})")
    text = data[:MAX_ERROR_CHARS].decode("utf-8", "replace")
    return ControllerError(HTTP_CODES.get(status, ErrorCode.UNKNOWN), method, f"HTTP {status}: {text}")


def read_token(path: str, env_name: str = "") -> str:
    """The bearer token: the file at `path` (stripped), else the environment variable named
    `env_name`, else "" (no auth). Read once per process, when its client opens; never logged,
    never put in an argv (a follower is handed the file's path or the variable's name)."""
    token = Path(path).read_text().strip() if path else os.environ.get(env_name, "").strip() if env_name else ""
    logs.redact(token)
    return token
