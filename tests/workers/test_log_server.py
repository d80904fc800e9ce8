"""One resolver for where logs are read (the controller's proxy route first), used by the adapter
(log tails, diagnostics) and the follower alike."""

from typing import Any

import pytest

from common.controller_target import ApiKind, ControllerTarget
from common.deadline import Deadline
from workers.controller.connect_api import IrisController
from workers.controller.connect_http import MISSING_METHOD, ConnectClient
from workers.controller.log_server import (
    FETCH_LOGS,
    LIST_ENDPOINTS,
    PROXY_ROUTE,
    LogRoute,
    LogService,
    base_url,
    resolve_log_service,
)
from workers.controller.model import ApiMismatch, ControllerError, ErrorCode
from workers.logservice_follow import log_client

CONTROLLER = "http://controller.invalid:10000"
PROXIED = f"{CONTROLLER}/{PROXY_ROUTE}"
NO_ROUTE = ApiMismatch(f"{PROXY_ROUTE}/{FETCH_LOGS}", MISSING_METHOD, "HTTP 404")  # an older Iris


Answer = dict[str, Any] | ControllerError


class Controller(ConnectClient):
    """A controller answering the proxy probe and ListEndpoints as told (a reply, or an error to raise)."""

    def __init__(self, proxy: Answer = NO_ROUTE, endpoints: Answer | None = None) -> None:
        super().__init__(CONTROLLER)
        self.answers = {f"{PROXY_ROUTE}/{FETCH_LOGS}": proxy, LIST_ENDPOINTS: {} if endpoints is None else endpoints}
        self.asked: list[str] = []

    def call(self, method: str, body: dict[str, Any], timeout_s: float, max_bytes: int = 0) -> dict[str, Any]:
        self.asked.append(method)
        answer = self.answers[method]
        if isinstance(answer, ControllerError):
            raise answer
        return answer


def test_the_controllers_proxy_route_comes_first() -> None:
    """Iris with the /proxy/ route: logs go through the controller, and nothing else is asked."""
    controller = Controller(proxy={"cursor": "0"})
    assert resolve_log_service(controller, 1) == LogService(PROXIED, LogRoute.CONTROLLER_PROXY)
    assert controller.asked == [f"{PROXY_ROUTE}/{FETCH_LOGS}"]


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
def test_without_the_route_the_registered_address_becomes_a_base_url(address: str, url: str) -> None:
    assert base_url(address) == url
    controller = Controller(endpoints={"endpoints": [{"name": "/system/log-server", "address": address}]})
    assert resolve_log_service(controller, 1) == LogService(url, LogRoute.REGISTERED)


@pytest.mark.parametrize(
    "controller",
    [
        Controller(endpoints={}),  # no log server registered
        Controller(endpoints={"endpoints": [{"address": ""}]}),
        Controller(endpoints=ApiMismatch(LIST_ENDPOINTS, MISSING_METHOD, "HTTP 404")),  # an older Iris
    ],
    ids=["no-endpoint", "empty-address", "no-method"],
)
def test_without_route_or_log_server_of_its_own_the_controller_serves_logs(controller: Controller) -> None:
    assert resolve_log_service(controller, 1) == LogService(CONTROLLER, LogRoute.CONTROLLER)


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("proxy", ControllerError(ErrorCode.UNAUTHENTICATED, FETCH_LOGS)),
        ("proxy", ApiMismatch(FETCH_LOGS, "entries[]")),
        ("proxy", ControllerError(ErrorCode.UNAVAILABLE, FETCH_LOGS)),
        ("endpoints", ControllerError(ErrorCode.UNAUTHENTICATED, LIST_ENDPOINTS)),
        ("endpoints", ApiMismatch(LIST_ENDPOINTS, "endpoints[]")),
    ],
    ids=["proxy-refused", "proxy-malformed", "proxy-unreachable", "registry-refused", "registry-malformed"],
)
def test_other_failures_are_the_callers(where: str, error: ControllerError) -> None:
    controller = Controller(proxy=error) if where == "proxy" else Controller(endpoints=error)
    with pytest.raises(ControllerError) as caught:
        resolve_log_service(controller, 1)
    assert caught.value is error


def test_the_adapter_reads_logs_where_the_resolver_says_with_the_controllers_pool() -> None:
    """Log tails and diagnostics post FetchLogs under the proxy route, through the controller's own client."""
    target = ControllerTarget(ApiKind.IRIS, CONTROLLER, "r")
    controller = Controller(proxy={"cursor": "0"})
    iris = IrisController(controller, target, Deadline.after(5))
    assert iris.log_service() == LogService(PROXIED, LogRoute.CONTROLLER_PROXY)
    logs = controller.at(iris.log_service().url)
    assert logs.base_url == PROXIED and logs._pool is controller._pool
    logs.close()  # not the owner: the controller's pool stays open
    assert controller._owns_pool and not logs._owns_pool


def test_the_followers_lookup_is_capped_by_its_deadline() -> None:
    """A deadline already passed: no call at all (the follower exits 0 at once)."""
    from workers.logservice_follow import Stop

    controller = Controller(proxy={"cursor": "0"})
    with pytest.raises(Stop):
        log_client(controller, deadline_unix=1.0)
    assert controller.asked == []
