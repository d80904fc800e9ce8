"""Where a real Iris serves its log service (finelog): one resolver for the adapter and the follower.

The controller's endpoint registry (`EndpointService/ListEndpoints`, name `/system/log-server`)
gives the log server's address. The proto documents it as `host:port` (controller.proto); some
deployments register a URL. Either becomes a base URL here. An Iris without the method (older
releases, which served FetchLogs on the controller's own port) or without the endpoint means
the controller's own address. Any other failure is the caller's: unreachable, refused (a bad
token), or a reply of the wrong shape (`ApiMismatch` naming the path).
"""

from workers.controller.connect_http import MISSING_METHOD, ConnectClient
from workers.controller.model import ApiMismatch
from workers.controller.reply import Field

LIST_ENDPOINTS = "iris.cluster.EndpointService/ListEndpoints"
FETCH_LOGS = "finelog.logging.LogService/FetchLogs"
LOG_SERVER_ENDPOINT = "/system/log-server"


def base_url(address: str) -> str:
    """`host:port` -> `http://host:port`; a URL stays as it is, without a trailing slash."""
    address = address.strip()
    return (address if "://" in address else f"http://{address}").rstrip("/")


def resolve_log_server(controller: ConnectClient, timeout_s: float) -> str:
    """The log server's base URL, asked of `controller`; the controller's own URL when it has none."""
    try:
        reply = controller.call(LIST_ENDPOINTS, {"prefix": LOG_SERVER_ENDPOINT, "exact": True}, timeout_s)
    except ApiMismatch as exc:
        if exc.field != MISSING_METHOD:
            raise
        return controller.base_url
    endpoints = Field.of(LIST_ENDPOINTS, reply).at("endpoints").as_list()
    address = endpoints[0].at("address").as_str() if endpoints else ""
    return base_url(address) if address.strip() else controller.base_url
