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

Credentials (`workers.controller.credentials`): each request carries the Iris token and, for
an Iris behind a proxy such as IAP, the proxy's token. A refusal that is the proxy's (a 407, a
401 with `Proxy-Authenticate`, a 401 or 403 without a JSON body) is `ProxyRefused`; after a
401/407 the call is sent once more with a proxy token fetched again, and a second refusal is
the caller's.

Every call is bounded (`workers.controller.bounded`): one time limit for connect, headers and
body, and a byte cap on the reply (`[iris] max_reply_bytes`; a log page has its own, smaller
one). A call with no answer in time is `deadline_exceeded`, as before (worth retrying: a hung
or restarting controller). One whose answer began but did not finish in time is
`controller_timeout`, and one longer than its cap `reply_too_large`: a controller that streams
a reply endlessly or drips it is broken or hostile, and asking again costs the same again.
An error answer's body is read up to ERROR_BODY_BYTES (its start says all we show).
"""

import copy
import time

import orjson
import urllib3

from common.controller_target import DEFAULT_MAX_REPLY_BYTES
from common.jsonshape import JsonObject
from workers.controller.bounded import Answer, BoundedPoolManager, CallLimit, read_body
from workers.controller.credentials import Credentials, ProxyRefused, proxy_refusal
from workers.controller.model import ApiMismatch, ControllerError, ErrorCode

MAX_ERROR_CHARS = 300
ERROR_BODY_BYTES = 64 * 1024
HEADERS = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
NO_PROXY_CREDENTIAL = "no proxy credential given ([iris] proxy_token_command or proxy_token_file)"
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
    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        pool_size: int = 4,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_reply_bytes = max_reply_bytes
        # Shared with the process's other clients (the log server's): one proxy token for all.
        self.credentials = credentials or Credentials()
        # retries=False: a retry is a decision for the caller's loop (with its backoff and
        # deadline), never a hidden second request that could submit a job twice.
        self._pool = BoundedPoolManager(num_pools=2, maxsize=pool_size, headers=HEADERS, retries=False)
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

    def call(self, method: str, body: JsonObject, timeout_s: float, max_bytes: int = 0) -> JsonObject:
        """One unary call, e.g. `call("iris.cluster.ControllerService/ListWorkers", {}, 5.0)`:
        answered within `timeout_s` in all, in at most `max_bytes` (default: the client's cap).
        A call the proxy refused is sent once more with a proxy token fetched again: the proxy
        forwarded nothing, so even a LaunchJob cannot happen twice."""
        ends = time.monotonic() + timeout_s
        try:
            return self._call_once(method, body, timeout_s, max_bytes)
        except ProxyRefused as exc:
            if exc.code is not ErrorCode.UNAUTHENTICATED or not self.credentials.refresh_proxy():
                raise
        return self._call_once(method, body, ends - time.monotonic(), max_bytes)

    def _call_once(self, method: str, body: JsonObject, timeout_s: float, max_bytes: int) -> JsonObject:
        cap = max_bytes or self.max_reply_bytes
        headers = HEADERS | self.credentials.headers(method, timeout_s)
        reply = self._exchange("POST", method, orjson.dumps(body), headers, timeout_s, cap)
        if reply.status == 200:
            if not reply.body.whole:
                raise ControllerError(ErrorCode.REPLY_TOO_LARGE, method, f"the reply is longer than {cap} bytes")
            return _json_object(method, reply.body.data)
        refused = proxy_refusal(reply.status, reply.headers, reply.body.data)
        if refused is not None:
            raise self._proxy_refused(method, refused, reply.status, reply.body.data)
        raise _error(method, reply.status, reply.body.data)

    def _proxy_refused(self, method: str, code: ErrorCode, status: int, data: bytes) -> ProxyRefused:
        text = f"HTTP {status}: {data[:MAX_ERROR_CHARS].decode('utf-8', 'replace')}"
        hint = "" if self.credentials.proxy is not None else f"{NO_PROXY_CREDENTIAL}; "
        return ProxyRefused(method, hint + text, code)

    def get_status(self, path: str, timeout_s: float) -> int | None:
        """The HTTP status `GET <base>/<path>` answers (Iris's `/health`), None if there was no answer."""
        headers = HEADERS | self.credentials.headers(path, timeout_s, required=False)
        try:
            return self._exchange("GET", path, None, headers, timeout_s, ERROR_BODY_BYTES).status
        except ControllerError:
            return None

    def _exchange(
        self, verb: str, path: str, body: bytes | None, headers: dict[str, str], timeout_s: float, cap: int
    ) -> Answer:
        """The status, headers and (up to `cap` bytes of) the body of one request, all within `timeout_s`."""
        with CallLimit(timeout_s) as limit:
            reply = self._send(verb, path, body, headers, limit)
            done = False
            try:
                found = read_body(reply, cap if reply.status == 200 else ERROR_BODY_BYTES)
                done = found.whole and not limit.fired
            except urllib3.exceptions.HTTPError as exc:
                raise _broken_answer(path, limit, exc) from None
            finally:
                if not done:
                    reply.close()  # unread or cut short: this connection never serves another call
                reply.release_conn()
            if limit.fired:  # a body read to EOF may only have ended because the watchdog shut it
                raise _broken_answer(path, limit, None)
        return Answer(reply.status, dict(reply.headers), found)

    def _send(
        self, verb: str, path: str, body: bytes | None, headers: dict[str, str], limit: CallLimit
    ) -> urllib3.BaseHTTPResponse:
        """The answer's status and headers, its body left unread (never preloaded, never decompressed)."""
        left = limit.left()
        try:
            return self._pool.request(
                verb, f"{self.base_url}/{path}", body=body, headers=headers,
                timeout=urllib3.Timeout(connect=left, read=left), preload_content=False, decode_content=False,
            )  # fmt: skip
        except urllib3.exceptions.NewConnectionError as exc:  # refused: urllib3 files it under timeouts
            raise ControllerError(ErrorCode.UNAVAILABLE, path, str(exc)) from None
        except urllib3.exceptions.TimeoutError as exc:
            raise ControllerError(ErrorCode.DEADLINE_EXCEEDED, path, str(exc)) from None
        except urllib3.exceptions.HTTPError as exc:  # refused, reset, DNS: the server is not there
            if limit.fired:
                details = f"no answer within {limit.seconds:g} s"
                raise ControllerError(ErrorCode.DEADLINE_EXCEEDED, path, details) from None
            raise ControllerError(ErrorCode.UNAVAILABLE, path, str(exc)) from None


def _broken_answer(method: str, limit: CallLimit, exc: Exception | None) -> ControllerError:
    """An answer that began and did not end well: out of time, or cut off by the server."""
    if limit.fired or isinstance(exc, urllib3.exceptions.TimeoutError):
        details = f"the reply did not end within {limit.seconds:g} s"
        return ControllerError(ErrorCode.CONTROLLER_TIMEOUT, method, details)
    return ControllerError(ErrorCode.UNAVAILABLE, method, f"the reply was cut off: {exc}")


def _json_object(method: str, data: bytes) -> JsonObject:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:  # also JSON nested deeper than orjson's limit (1024)
        raise ApiMismatch(method, "<body>", f"reply is not JSON ({exc}): {data[:80]!r}") from None
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
