"""The coscheduled test is sized from the slice the workers describe, the autoscaler as fallback.

Worker lists and autoscaler replies are written as Iris 0.2.227 sends them (ListWorkers'
`metadata.attributes` with `tpu-name`, `tpu-vm-count`, `device-*`; `metadata.device.tpu.count`);
no process is started.
"""

import dataclasses
from typing import Any

from common.controller_target import ApiKind, ControllerTarget, PriorityBand
from common.deadline import Deadline
from workers.controller.connect_api import IrisController
from workers.controller.model import AutoscalerStatus, GroupStatus, JobRequest, Worker
from workers.smoke_tests.parity_tests import ParitySettings, parity_tests
from workers.smoke_tests.shape import shape_of, slices_of
from workers.smoke_tests.suite import Accelerator, pick_accelerator, standard_tests

TARGET = ControllerTarget(api=ApiKind.IRIS, address="http://127.0.0.1:1", job_root="sz")


def _iris_worker(slice_name: str, index: int, vm_count: int, chips: int, variant: str = "v5litepod-16") -> Any:
    attributes: dict[str, Any] = {
        "scale-group": {"stringValue": "tpu_group"},
        "device-type": {"stringValue": "tpu"},
        "device-variant": {"stringValue": variant},
        "tpu-name": {"stringValue": slice_name},
        "tpu-worker-id": {"intValue": str(index)},
        "tpu-vm-count": {"intValue": str(vm_count)},
        "preemptible": {"stringValue": "true"},
    }
    return {
        "workerId": f"worker-{slice_name}-{index}-abcd",
        "healthy": True,
        "address": "127.0.0.1:2",
        "metadata": {"device": {"tpu": {"variant": variant, "count": chips}}, "attributes": attributes},
    }


def _cpu_worker() -> Any:
    attributes = {"scale-group": {"stringValue": "cpu"}, "device-type": {"stringValue": "cpu"}}
    return {"workerId": "worker-cpu-0", "healthy": True, "metadata": {"device": {"cpu": {}}, "attributes": attributes}}


class FakeConnect:
    """Answers each method with a canned JSON reply; remembers what was asked."""

    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies = replies
        self.base_url = TARGET.address
        self.token = ""

    def call(self, method: str, body: dict[str, Any], timeout_s: float, max_bytes: int = 0) -> Any:
        return self.replies[method.rsplit("/", 1)[-1]]


def _iris(workers: list[Any], groups: list[Any] | None = None) -> IrisController:
    replies = {"ListWorkers": {"workers": workers}, "GetAutoscalerStatus": {"status": {"groups": groups or []}}}
    return IrisController(FakeConnect(replies), TARGET, Deadline.after(60))  # type: ignore[arg-type]


TPU_GROUP = {"name": "tpu_group", "deviceType": "tpu", "deviceVariant": "v5litepod-16"}
CPU_GROUP = {"name": "cpu", "deviceType": "cpu", "deviceVariant": "cpu"}


def _accelerator(iris: IrisController) -> Accelerator:
    return pick_accelerator(shape_of(iris.autoscaler(), iris.list_workers()), None)


def test_the_slice_the_workers_describe_sizes_the_coscheduled_job() -> None:
    """tpu-vm-count and each worker's chips win over what the autoscaler's type table says."""
    workers = [_iris_worker("slice-a", i, vm_count=2, chips=8) for i in (1, 0)] + [_cpu_worker()]
    iris = _iris(workers, [CPU_GROUP, TPU_GROUP])
    assert iris.list_workers()[0].device_count == 8
    acc = _accelerator(iris)
    assert acc == Accelerator("tpu", "v5litepod-16", hosts_per_slice=2, chips_per_host=8)
    (cosched,) = standard_tests(["coscheduled"], acc, 30.0)
    (request,) = cosched.requests
    assert (request.replicas, request.count, request.group_by) == (2, 8, "tpu-name")
    body = iris.launch_body(request)
    assert body["resources"]["device"] == {"tpu": {"variant": "v5litepod-16", "count": 8}}
    assert body["replicas"] == 2 and body["coscheduling"] == {"groupBy": "tpu-name"}


def test_a_backend_without_an_autoscaler_runs_the_suite_from_its_workers() -> None:
    """An empty autoscaler status (Iris's answer without the capability): groups come from ListWorkers."""
    workers = [_cpu_worker()] + [_iris_worker("slice-b", i, vm_count=4, chips=4) for i in range(4)]
    iris = _iris(workers)
    assert iris.autoscaler().groups == ()
    shape = shape_of(iris.autoscaler(), iris.list_workers())
    assert sorted(o.name for o in shape.offers) == ["cpu", "tpu_group"]
    assert _accelerator(iris) == Accelerator("tpu", "v5litepod-16", hosts_per_slice=4, chips_per_host=4)
    # The accelerator probe asks for the same chips on that group.
    (probe,) = parity_tests(["accelerator_probe"], shape, ParitySettings(), 30.0)
    assert [(r.device, r.variant, r.count) for r in probe.requests] == [("tpu", "v5litepod-16", 4)]


def test_before_the_slice_exists_the_autoscaler_and_the_tpu_type_size_it() -> None:
    """No TPU worker yet (the slice scales up for the tests): hosts and chips per host from the type name."""
    acc = _accelerator(_iris([_cpu_worker()], [CPU_GROUP, TPU_GROUP]))
    assert acc == Accelerator("tpu", "v5litepod-16", hosts_per_slice=4, chips_per_host=4)
    v4 = {"name": "v4", "deviceType": "tpu", "deviceVariant": "v4-32"}
    assert _accelerator(_iris([], [v4])) == Accelerator("tpu", "v4-32", hosts_per_slice=4, chips_per_host=4)
    v5e8 = {"name": "v5e8", "deviceType": "tpu", "deviceVariant": "v5litepod-8"}
    assert _accelerator(_iris([], [v5e8])) == Accelerator("tpu", "v5litepod-8", hosts_per_slice=1, chips_per_host=8)


def test_a_slice_half_registered_without_a_declared_size_is_not_undercounted() -> None:
    """Without tpu-vm-count, two registered hosts of a four-host group do not make a two-host slice."""
    group = GroupStatus(name="tpu", device="tpu", variant="v5litepod-16", hosts_per_slice=4, chips_per_host=4)
    workers = [
        Worker(f"s-w{i}", True, "", {"scale-group": "tpu", "tpu-name": "s", "tpu-worker-id": str(i)}) for i in (0, 1)
    ]
    (found,) = slices_of(workers)
    assert (found.hosts, found.hosts_declared) == (2, False)
    (offer,) = shape_of(AutoscalerStatus(groups=(group,)), workers).offers
    assert (offer.hosts_per_slice, offer.chips_per_host) == (4, 4)


def test_every_job_is_launched_in_the_runs_priority_band_interactive_by_default() -> None:
    """LaunchJob's `priorityBand` (Iris 0.2.227's JSON enum name): interactive unless the target says otherwise."""
    request = JobRequest("simple", ("true",))
    assert _iris([]).launch_body(request)["priorityBand"] == "PRIORITY_BAND_INTERACTIVE"
    batch = dataclasses.replace(TARGET, priority_band=PriorityBand.BATCH)
    body = IrisController(FakeConnect({}), batch, Deadline.after(60)).launch_body(request)  # type: ignore[arg-type]
    assert body["priorityBand"] == "PRIORITY_BAND_BATCH"
