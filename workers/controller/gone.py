"""Whether a controller is known gone, not merely slow or unreachable for a moment.

A child that must still talk to the controller on its way out (the tests child's job sweep)
asks this after a call failed `unavailable`, so that it does not spend its budget retrying a
controller that cannot answer again:
- an embedded cluster's Unix socket that is missing, or that nobody accepts on: the socket
  lives in a private directory made for that one cluster (`local_cluster.private_socket`),
  so no restart can bring it back at the same path;
- a refused TCP connection, only on a cluster the run started itself on this host
  (`owned`: embedded, iris-local). Elsewhere a refusal may be a tunnel being reopened
  (`--cluster gcp`, `[iris] tunnel_command`) or a standing controller restarting: worth the retries.
Anything else (a timeout, a reset, an answer) is not proof: "" (not known gone).
"""

import socket
import urllib.parse
from pathlib import Path

from common.controller_target import ControllerTarget
from local_cluster import private_socket

PROBE_TIMEOUT_S = 0.25  # a local connect: refused or accepted at once


def gone_reason(target: ControllerTarget, owned: bool) -> str:
    """Why the controller at `target` is known gone ("" if it is not known to be)."""
    address = target.address
    if address.startswith(private_socket.SCHEME):
        path = Path(address[len(private_socket.SCHEME) :])
        if not path.exists():
            return f"socket {path} is gone"
        try:
            return "" if private_socket.listening(path, PROBE_TIMEOUT_S) else f"nothing accepts on socket {path}"
        except OSError:  # a full backlog, a permission: not proof
            return ""
    if not owned:
        return ""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return ""
    except ConnectionRefusedError:
        return f"connection to {host}:{port} refused"
    except OSError:
        return ""


def _host_port(address: str) -> tuple[str, int]:
    """`http(s)://host[:port]` (Iris) or `host:port` (an embedded API over TCP)."""
    if "://" in address:
        parts = urllib.parse.urlsplit(address)
        return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)
