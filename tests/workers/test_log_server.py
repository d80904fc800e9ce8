"""One resolver for the log server's address, used by the adapter (log tails, diagnostics) and the follower."""

from typing import Any

import pytest

from common.controller_target import ApiKind, ControllerTarget
from common.deadline import Deadline
from workers.controller.connect_api import IrisController
from workers.controller.connect_http import MISSING_METHOD, ConnectClient
from workers.controller.log_server import LIST_ENDPOINTS, base_url, resolve_log_server
from workers.controller.model import ApiMismatch, ControllerError, ErrorCode
from workers.logservice_follow import log_server

CONTROLLER = "http://controller.invalid:10000"


class Endpoints(ConnectClient):
    """A controller whose ListEndpoints answers `reply`, or raises `error`."""

    def __init__(self, reply: dict[str, Any] | None = None, error: ControllerError | None = None) -> None:
        super().__init__(CONTROLLER)
        self.reply, self.error = reply or {}, error

    def call(self, method: str, body: dict[str, Any], timeout_s: float, max_bytes: int = 0) -> dict[str, Any]:
        assert method == LIST_ENDPOINTS and body == {"prefix": "/system/log-server", "exact": True}
        if self.error is not None:
            raise self.error
        return self.reply


@pytest.mark.parametrize(
    ("address", "url"),
    [
        ("10.0.0.7:10001", "http://10.0.0.7:10001"),  # the proto's form: host:port
        ("logs.internal:443", "http://logs.internal:443"),
        ("http://127.0.0.1:10001/", "http://127.0.0.1:10001"),
        ("https://logs.example.com", "https://logs.example.com"),
        (" 10.0.0.7:1 ", "http://10.0.0.7:1"),
    ],
)
def test_an_endpoint_address_becomes_a_base_url(address: str, url: str) -> None:
    assert base_url(address) == url
    assert resolve_log_server(Endpoints({"endpoints": [{"name": "/system/log-server", "address": address}]}), 1) == url


@pytest.mark.parametrize(
    "client",
    [
        Endpoints({}),  # no log server registered
        Endpoints({"endpoints": [{"address": ""}]}),
        Endpoints(error=ApiMismatch(LIST_ENDPOINTS, MISSING_METHOD, "HTTP 404")),  # an older Iris
    ],
    ids=["no-endpoint", "empty-address", "no-method"],
)
def test_without_a_log_server_of_its_own_the_controller_serves_logs(client: Endpoints) -> None:
    assert resolve_log_server(client, 1) == CONTROLLER


@pytest.mark.parametrize(
    "error",
    [ControllerError(ErrorCode.UNAUTHENTICATED, LIST_ENDPOINTS), ApiMismatch(LIST_ENDPOINTS, "endpoints[]")],
    ids=["refused", "malformed"],
)
def test_other_failures_are_the_callers(error: ControllerError) -> None:
    with pytest.raises(ControllerError) as caught:
        resolve_log_server(Endpoints(error=error), 1)
    assert caught.value is error


def test_the_adapter_talks_to_the_normalised_address() -> None:
    """ListEndpoints says `host:port`: the adapter's log-tail client gets `http://host:port`, as the follower does."""
    target = ControllerTarget(ApiKind.IRIS, CONTROLLER, "r")
    iris = IrisController(Endpoints({"endpoints": [{"address": "10.0.0.7:10001"}]}), target, Deadline.after(5))
    assert iris.log_server().base_url == "http://10.0.0.7:10001"


def test_the_followers_lookup_is_capped_by_its_deadline() -> None:
    """A deadline already passed: no call at all (the follower exits 0 at once)."""
    from workers.logservice_follow import Stop

    with pytest.raises(Stop):
        log_server(CONTROLLER, "", deadline_unix=1.0)
