"""Where a real Iris serves its log service (finelog): one resolver for every caller.

Streams (the follower), log tails (the tests child) and diagnostics read logs the same way,
with the same credentials, decided here in this order:
1. `<controller>/proxy/system.log-server/` (LogRoute.CONTROLLER_PROXY): the controller proxies
   its registered endpoints at `/proxy/<name with '/' turned into '.'>/`, and Iris's own
   clients (its dashboard, its e2e tests) read logs this way. It is the only route that works
   from a bastion holding one forwarded port to the controller: the log server's own address
   is VPC-internal on a real cluster. A probe (one FetchLogs of one line) decides; only a 404
   without a Connect body (no such route: an older Iris) or `unimplemented` moves on.
2. The address registered under `/system/log-server` (LogRoute.REGISTERED), from
   `EndpointService/ListEndpoints`. The proto documents it as `host:port` (controller.proto);
   some deployments register a URL. Either becomes a base URL.
3. The controller's own address (LogRoute.CONTROLLER): an Iris without the registry method
   or without the endpoint (older releases served FetchLogs on the controller's own port).
Any other failure is the caller's: unreachable, refused (a bad token), or a reply of the wrong
shape (`ApiMismatch` naming the path).
"""

from common.jsonshape import JsonObject
from workers.controller.connect_http import MISSING_METHOD, ConnectClient
from workers.controller.model import ApiMismatch, LogRoute, LogService
from workers.controller.reply import Field

LIST_ENDPOINTS = "iris.cluster.EndpointService/ListEndpoints"
FETCH_LOGS = "finelog.logging.LogService/FetchLogs"
LOG_SERVER_ENDPOINT = "/system/log-server"
# The controller's proxy route for the endpoint above (Iris turns the name's '/' into '.').
PROXY_ROUTE = "proxy/system.log-server"
# The cheapest question the log service answers: the controller's last line, if any.
PROBE: JsonObject = {"source": "/system/controller", "matchScope": "MATCH_SCOPE_EXACT", "maxLines": 1, "tail": True}


def base_url(address: str) -> str:
    """`host:port` -> `http://host:port`; a URL stays as it is, without a trailing slash."""
    address = address.strip()
    return (address if "://" in address else f"http://{address}").rstrip("/")


def _no_such_route(exc: ApiMismatch) -> bool:
    return exc.field == MISSING_METHOD


def resolve_log_service(controller: ConnectClient, timeout_s: float) -> LogService:
    """Where FetchLogs goes, asked of `controller` (each question within `timeout_s`)."""
    try:
        controller.call(f"{PROXY_ROUTE}/{FETCH_LOGS}", PROBE, timeout_s)
        return LogService(f"{controller.base_url}/{PROXY_ROUTE}", LogRoute.CONTROLLER_PROXY)
    except ApiMismatch as exc:
        if not _no_such_route(exc):
            raise
    try:
        reply = controller.call(LIST_ENDPOINTS, {"prefix": LOG_SERVER_ENDPOINT, "exact": True}, timeout_s)
    except ApiMismatch as exc:
        if not _no_such_route(exc):
            raise
        return LogService(controller.base_url, LogRoute.CONTROLLER)
    endpoints = Field.of(LIST_ENDPOINTS, reply).at("endpoints").as_list()
    address = endpoints[0].at("address").as_str() if endpoints else ""
    if not address.strip():
        return LogService(controller.base_url, LogRoute.CONTROLLER)
    return LogService(base_url(address), LogRoute.REGISTERED)
