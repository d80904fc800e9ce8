"""Unary Connect calls over HTTP/1.1 with JSON bodies: the wire of a real Iris controller.

A call is `POST <base>/<package.Service>/<Method>` with `Content-Type: application/json`;
a reply is 200 with the response message as JSON, or an error status with
`{"code": "...", "message": "..."}`. One keep-alive connection pool per process
(urllib3), opened after the fork and closed with the client. Nothing is generated from
Iris's .proto files: the JSON field names we read are the contract, and anything we do
not read is ignored, so a newer Iris that adds fields changes nothing here.

Mapping to our error codes: a connection that cannot be made, is reset, or times out is
`unavailable` / `deadline_exceeded` (worth retrying); a 404 means the method does not
exist on this server: `iris_api_mismatch`, naming it; a Connect error body gives its own
code; any other non-JSON answer is `unknown` with the start of the body.
"""

import os
from pathlib import Path
from typing import Any

import orjson
import urllib3

from workers.controller.model import ApiMismatch, ControllerError, ErrorCode

MAX_ERROR_CHARS = 300
_RETRYABLE_HTTP = {502: ErrorCode.UNAVAILABLE, 503: ErrorCode.UNAVAILABLE, 504: ErrorCode.DEADLINE_EXCEEDED}


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

    def close(self) -> None:
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

    def get_ok(self, path: str, timeout_s: float) -> bool:
        """True if `GET <base>/<path>` answers 200 (Iris's `/health`)."""
        try:
            reply = self._pool.request("GET", f"{self.base_url}/{path}", timeout=urllib3.Timeout(total=timeout_s))
        except urllib3.exceptions.HTTPError:
            return False
        return reply.status == 200


def _json_object(method: str, data: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ApiMismatch(method, "<body>", f"reply is not JSON: {data[:80]!r}") from None
    if not isinstance(parsed, dict):
        raise ApiMismatch(method, "<body>", f"reply is not a JSON object: {data[:80]!r}")
    return parsed


def _error(method: str, status: int, data: bytes) -> ControllerError:
    if status == 404:
        return ApiMismatch(method, "<method>", f"the server has no method {method} (HTTP 404)")
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        return ControllerError(ErrorCode.named(parsed["code"]), method, str(parsed.get("message", "")))
    code = _RETRYABLE_HTTP.get(status, ErrorCode.UNKNOWN)
    return ControllerError(code, method, f"HTTP {status}: {data[:MAX_ERROR_CHARS].decode('utf-8', 'replace')}")


def read_token(path: str, env_name: str = "") -> str:
    """The bearer token: the file at `path` (stripped), else the environment variable named
    `env_name`, else "" (no auth). Read once per process, when its client opens; never logged,
    never put in an argv (a follower is handed the file's path or the variable's name)."""
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(env_name, "").strip() if env_name else ""
