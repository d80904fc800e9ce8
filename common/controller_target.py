"""Which controller a child talks to, decided once at preflight and handed over the fork.

Neutral on purpose: the supervisor builds it, and it imports neither grpc nor an HTTP
client, so building it never loads either into the supervisor.
"""

import enum
from dataclasses import dataclass


class ApiKind(enum.StrEnum):
    """The wire a controller speaks."""

    EMBEDDED = "embedded"  # our own gRPC API (iris_smoke_api), the embedded local cluster
    IRIS = "iris"  # a real Iris controller: Connect over HTTP/1.1 with JSON bodies


@dataclass(frozen=True)
class ControllerTarget:
    api: ApiKind
    # unix:/…/controller.sock for the embedded cluster (a private socket, never TCP), host:port
    # for an ssh cluster reached otherwise, http(s)://host:port for Iris.
    address: str
    # Every job this run submits is named under this root, so a run lists (and
    # terminates) only its own jobs: "<root>-<test>" embedded, "/<root>/<test>" on Iris.
    job_root: str
    token_file: str = ""  # Iris bearer token, read in the child; never logged
