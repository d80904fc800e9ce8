"""A worker whose VM is named like the controller's never shadows the controller's stream."""

from typing import Any

from supervisor.children import ChildSpec
from supervisor.streams import StreamManager, stream_name
from tests.run.test_stream_manager import FakeClock, FakeSupervisor
from workers.controller.model import Worker
from workers.discovery import hosts_from
from workers.hosts import Role
from workers.messages import HostEntry


class _Log:
    def warning(self, *_args: Any, **_kw: Any) -> None:
        raise AssertionError("no name was rejected")


def test_a_worker_named_like_the_controller_gets_a_stream_of_its_own() -> None:
    twin = Worker(worker_id="w-1", healthy=True, address="10.0.0.7", vm_name="x-controller")
    hosts = hosts_from([twin], "x", "unix:/run/iris-smoke-a/controller.sock", _Log())
    sup = FakeSupervisor()
    specs: dict[str, HostEntry] = {}

    def spec_for(host: HostEntry) -> ChildSpec:
        specs[stream_name(host)] = host
        return ChildSpec(name=stream_name(host), role="stream", entrypoint="x:y")

    StreamManager(sup, spec_for, 30.0, FakeClock()).update(hosts)  # type: ignore[arg-type]
    assert sorted(sup.children) == ["stream:controller@x-controller", "stream:x-controller"]
    assert specs["stream:controller@x-controller"].role == "controller"
    assert specs["stream:x-controller"].role == "worker"


def test_no_valid_worker_name_can_take_the_controllers_stream_name() -> None:
    """VM names never hold "@" (workers.hosts.NAME_PATTERN): the controller's stream name is its own."""
    controller = HostEntry("controller", 0, Role.CONTROLLER, "c", "", "iris-controller")
    workers = [
        HostEntry(vm, host, Role.WORKER, "w", "", "iris-worker", hosts_in_vm=n)
        for vm in ("controller", "stream", "0")
        for host, n in ((0, 1), (0, 2), (1, 2))
    ]
    assert stream_name(controller) not in {stream_name(w) for w in workers}
