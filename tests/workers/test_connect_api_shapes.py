"""The Connect adapter reads every reply by path: a reply of the wrong shape is `iris_api_mismatch`
naming the method and the JSON path, never a TypeError, AttributeError or KeyError in a child.

A fake client answers each method with a canned JSON object (the adapter's only input); the
adapter's parsing is what is under test, the wire is tested in test_connect_http.py.
"""

from collections.abc import Callable
from typing import Any

import pytest

from common.controller_target import ApiKind, ControllerTarget
from common.deadline import Deadline
from workers.controller.connect_api import IrisController
from workers.controller.connect_http import MISSING_METHOD, ConnectClient
from workers.controller.model import ApiMismatch, ErrorCode, JobState, TaskState, task_finished

ROOT = "/shape/"
ATTRIBUTES = {"tpu-name": {"stringValue": "s"}, "tpu-vm-count": {"intValue": "4"}}
WORKER = {"workerId": "w-1", "healthy": True, "address": "10.0.0.1:1", "metadata": {"attributes": ATTRIBUTES}}
JOB = {"jobId": f"{ROOT}simple", "state": "JOB_STATE_RUNNING", "taskStateCounts": {"running": 1},
       "submittedAt": {"epochMs": "1700000000000"}, "exitCode": 0}  # fmt: skip
TASK = {"taskId": f"{ROOT}simple/0", "state": "TASK_STATE_RUNNING", "attempts": [{}]}
VM = {"vmId": "v", "state": "VM_STATE_READY", "workerHealthy": True}
GROUP = {"name": "tpu", "deviceType": "tpu", "deviceVariant": "v5litepod-16", "slices": [{"sliceId": "s", "vms": [VM]}]}
UNMET = {"reason": "no capacity", "entry": {"taskIds": [f"{ROOT}simple/0"]}}
STATUS = {"groups": [GROUP], "currentDemand": {"tpu": 4}, "recentActions": [{"actionType": "scale_up"}],
          "lastRoutingDecision": {"unmetEntries": [UNMET]}}  # fmt: skip

LIST_WORKERS = "iris.cluster.ControllerService/ListWorkers"
LIST_JOBS = "iris.cluster.ControllerService/ListJobs"
LIST_TASKS = "iris.cluster.ControllerService/ListTasks"
LAUNCH = "iris.cluster.ControllerService/LaunchJob"
AUTOSCALER = "iris.cluster.ControllerService/GetAutoscalerStatus"
ENDPOINTS = "iris.cluster.EndpointService/ListEndpoints"
FETCH_LOGS = "finelog.logging.LogService/FetchLogs"
PROXIED_FETCH_LOGS = f"proxy/system.log-server/{FETCH_LOGS}"


class FakeClient(ConnectClient):
    """Answers each method with its canned reply. Unless told otherwise it is an older Iris: no
    /proxy/ route to its log server, and ListEndpoints says it has no log server of its own."""

    def __init__(self, replies: dict[str, dict[str, Any]]) -> None:
        super().__init__("http://controller.invalid:1")
        self.replies = {ENDPOINTS: {}, **replies}

    def call(self, method: str, body: dict[str, Any], timeout_s: float, max_bytes: int = 0) -> dict[str, Any]:
        if method == PROXIED_FETCH_LOGS and method not in self.replies:
            raise ApiMismatch(method, MISSING_METHOD, "HTTP 404")
        return self.replies[method]


def _iris(replies: dict[str, dict[str, Any]]) -> IrisController:
    target = ControllerTarget(ApiKind.IRIS, "http://controller.invalid:1", "shape")
    return IrisController(FakeClient(replies), target, Deadline.after(30))


def _workers(iris: IrisController) -> object:
    return iris.list_workers()


def _jobs(iris: IrisController) -> object:
    return iris.list_jobs()


def _tasks(iris: IrisController) -> object:
    return iris.list_tasks(f"{ROOT}simple")


def _status(iris: IrisController) -> object:
    return iris.autoscaler()


def _launch(iris: IrisController) -> object:
    from workers.controller.model import JobRequest

    return iris.launch(JobRequest(name="simple", argv=("true",)))


def _tail(iris: IrisController) -> object:
    return iris.task_log_tail(f"{ROOT}simple", 0, 5)


def _worker(**changes: Any) -> dict[str, Any]:
    return {"workers": [{**WORKER, **changes}]}


def _status_with(**changes: Any) -> dict[str, Any]:
    return {"status": {**STATUS, **changes}}


def _group(**changes: Any) -> dict[str, Any]:
    return _status_with(groups=[{**GROUP, **changes}])


Case = tuple[str, Callable[[IrisController], object], dict[str, Any], str, str]
# (id, call, the one malformed reply, the method it names, the JSON path it names)
SHAPES: list[Case] = [
    ("workers-int", _workers, {"workers": 3}, LIST_WORKERS, "workers"),
    ("worker-not-object", _workers, {"workers": [5]}, LIST_WORKERS, "workers[]"),
    ("worker-null", _workers, {"workers": [None]}, LIST_WORKERS, "workers[]"),
    ("metadata-list", _workers, _worker(metadata=[]), LIST_WORKERS, "workers[].metadata"),
    ("attributes-list", _workers, _worker(metadata={"attributes": []}), LIST_WORKERS, "workers[].metadata.attributes"),
    ("attribute-value-list", _workers, _worker(metadata={"attributes": {"k": []}}), LIST_WORKERS,
     "workers[].metadata.attributes.k"),
    ("worker-id-int", _workers, _worker(workerId=7), LIST_WORKERS, "workers[].workerId"),
    ("worker-id-missing", _workers, {"workers": [{"healthy": True}]}, LIST_WORKERS, "workers[].workerId"),
    ("device-count-text", _workers, _worker(metadata={"device": {"tpu": {"count": "four"}}}), LIST_WORKERS,
     "workers[].metadata.device.tpu.count"),
    ("healthy-string", _workers, _worker(healthy="yes"), LIST_WORKERS, "workers[].healthy"),
    ("jobs-object", _jobs, {"jobs": {}}, LIST_JOBS, "jobs"),
    ("task-state-counts-list", _jobs, {"jobs": [{**JOB, "taskStateCounts": [1]}]}, LIST_JOBS, "jobs[].taskStateCounts"),
    ("job-state-null", _jobs, {"jobs": [{**JOB, "state": None}]}, LIST_JOBS, "jobs[].state"),
    ("job-exit-code-text", _jobs, {"jobs": [{**JOB, "exitCode": "abc"}]}, LIST_JOBS, "jobs[].exitCode"),
    ("submitted-at-string", _jobs, {"jobs": [{**JOB, "submittedAt": "yesterday"}]}, LIST_JOBS, "jobs[].submittedAt"),
    ("attempts-int", _tasks, {"tasks": [{**TASK, "attempts": 2}]}, LIST_TASKS, "tasks[].attempts"),
    ("task-id-int", _tasks, {"tasks": [{**TASK, "taskId": 0}]}, LIST_TASKS, "tasks[].taskId"),
    ("job-id-list", _launch, {"jobId": ["x"]}, LAUNCH, "jobId"),
    ("status-null", _status, {"status": None}, AUTOSCALER, "status"),
    ("status-list", _status, {"status": []}, AUTOSCALER, "status"),
    ("action-not-object", _status, _status_with(recentActions=["scale_up"]), AUTOSCALER, "status.recentActions[]"),
    ("unmet-not-object", _status, _status_with(lastRoutingDecision={"unmetEntries": [1]}), AUTOSCALER,
     "status.lastRoutingDecision.unmetEntries[]"),
    ("unmet-task-id-int", _status, _status_with(lastRoutingDecision={"unmetEntries": [{"entry": {"taskIds": [1, 2]}}]}),
     AUTOSCALER, "status.lastRoutingDecision.unmetEntries[].entry.taskIds[]"),
    ("demand-list", _status, _status_with(currentDemand=[4]), AUTOSCALER, "status.currentDemand"),
    ("slices-object", _status, _group(slices={}), AUTOSCALER, "status.groups[].slices"),
    ("slice-not-object", _status, _group(slices=["s"]), AUTOSCALER, "status.groups[].slices[]"),
    ("vm-not-object", _status, _group(slices=[{"vms": ["v"]}]), AUTOSCALER, "status.groups[].slices[].vms[]"),
    ("group-name-int", _status, _group(name=3), AUTOSCALER, "status.groups[].name"),
    ("endpoint-not-object", _tail, {ENDPOINTS: {"endpoints": ["127.0.0.1:1"]}}, ENDPOINTS, "endpoints[]"),
    ("endpoint-address-int", _tail, {ENDPOINTS: {"endpoints": [{"address": 8080}]}}, ENDPOINTS, "endpoints[].address"),
    ("log-entries-object", _tail, {FETCH_LOGS: {"entries": {}}}, FETCH_LOGS, "entries"),
    ("proxied-log-entries-object", _tail, {PROXIED_FETCH_LOGS: {}, FETCH_LOGS: {"entries": {}}}, FETCH_LOGS,
     "entries"),
]  # fmt: skip
# Numbers out of range: wider than int64, a timestamp no calendar prints, a slice host no slice has.
BIG = "100000000000000000000"  # 1e20
RANGES: list[Case] = [
    ("epoch-ms-1e17", _jobs, {"jobs": [{**JOB, "submittedAt": {"epochMs": "100000000000000000"}}]}, LIST_JOBS,
     "jobs[].submittedAt.epochMs"),
    ("epoch-ms-negative", _jobs, {"jobs": [{**JOB, "finishedAt": {"epochMs": -5}}]}, LIST_JOBS,
     "jobs[].finishedAt.epochMs"),
    ("exit-code-1e20", _jobs, {"jobs": [{**JOB, "exitCode": BIG}]}, LIST_JOBS, "jobs[].exitCode"),
    ("exit-code-float-1e20", _jobs, {"jobs": [{**JOB, "exitCode": 1e20}]}, LIST_JOBS, "jobs[].exitCode"),
    ("task-count-1e20", _jobs, {"jobs": [{**JOB, "taskStateCounts": {"running": BIG}}]}, LIST_JOBS,
     "jobs[].taskStateCounts.running"),
    ("task-index-1e20", _tasks, {"tasks": [{**TASK, "taskId": f"{ROOT}simple/{BIG}"}]}, LIST_TASKS,
     "tasks[].taskId"),
    ("tpu-worker-id-1e20", _workers, _worker(metadata={"attributes": {"tpu-worker-id": {"stringValue": BIG}}}),
     LIST_WORKERS, "workers[].metadata.attributes.tpu-worker-id"),
    ("tpu-vm-count-int-1e20", _workers, _worker(metadata={"attributes": {"tpu-vm-count": {"intValue": BIG}}}),
     LIST_WORKERS, "workers[].metadata.attributes.tpu-vm-count.intValue"),
    ("device-count-1e20", _workers, _worker(metadata={"device": {"tpu": {"count": BIG}}}), LIST_WORKERS,
     "workers[].metadata.device.tpu.count"),
    ("demand-1e20", _status, _status_with(currentDemand={"g": BIG}), AUTOSCALER, "status.currentDemand.g"),
    ("action-time-1e17", _status, _status_with(recentActions=[{"timestamp": {"epochMs": 1e17}}]), AUTOSCALER,
     "status.recentActions[].timestamp.epochMs"),
    ("log-seq-1e20", _tail, {FETCH_LOGS: {"entries": [{"seq": BIG, "data": "x"}]}}, FETCH_LOGS, "entries[].seq"),
]  # fmt: skip
SHAPES += RANGES


@pytest.mark.parametrize(("call", "reply", "method", "path"), [c[1:] for c in SHAPES], ids=[c[0] for c in SHAPES])
def test_a_malformed_reply_is_an_api_mismatch_naming_method_and_path(
    call: Callable[[IrisController], object], reply: dict[str, Any], method: str, path: str
) -> None:
    replies = reply if any("/" in k for k in reply) else {method: reply}
    with pytest.raises(ApiMismatch) as caught:
        call(_iris(replies))
    assert caught.value.code is ErrorCode.API_MISMATCH
    assert (caught.value.method, caught.value.field) == (method, path)
    assert path in caught.value.details and method.rsplit("/", 1)[-1] in caught.value.details


def test_well_formed_replies_parse_and_unknown_fields_are_ignored() -> None:
    iris = _iris({
        LIST_WORKERS: {"workers": [{**WORKER, "someNewField": {"x": [1]}}], "nextPageToken": "t"},
        LIST_JOBS: {"jobs": [JOB]},
        LIST_TASKS: {"tasks": [TASK]},
        AUTOSCALER: {**_status_with(), "futureThing": 1},
    })  # fmt: skip
    (worker,) = iris.list_workers()
    assert worker.attributes == {"tpu-name": "s", "tpu-vm-count": "4"} and worker.healthy
    (job,) = iris.list_jobs()
    assert job.state is JobState.RUNNING and job.task_state_counts == {"running": 1} and job.submitted_at
    assert iris.list_tasks(JOB["jobId"])[0].attempts == 1
    status = iris.autoscaler()
    assert status.current_demand == 4 and status.groups[0].current_demand == 4
    assert status.unmet[0].job_id == f"{ROOT}simple/0" and status.groups[0].slices[0].vms[0].healthy is True


def test_absent_and_null_optional_fields_keep_their_defaults() -> None:
    """Proto3 JSON: `null` is the field's default, as an absent field is (protojson writes unset messages as null)."""
    iris = _iris({
        LIST_WORKERS: {"workers": [{"workerId": "w", "metadata": None}]},
        LIST_JOBS: {"jobs": None},
        LIST_TASKS: {},
        AUTOSCALER: {"status": {"groups": [{"name": "cpu", "slices": None}], "lastRoutingDecision": None}},
    })  # fmt: skip
    (worker,) = iris.list_workers()
    assert worker.attributes == {} and worker.healthy is False and worker.address == ""
    assert iris.list_jobs() == [] and iris.list_tasks("/shape/x") == []
    status = iris.autoscaler()
    assert status.groups[0].device == "cpu" and status.unmet == () and status.current_demand == 0


def test_every_task_state_of_iris_0_2_227_is_known_and_missing_is_not_an_end() -> None:
    """Iris 0.2.227's task states (iris/rpc/job.proto) each map to a state of ours, never `unspecified`;
    MISSING (12, a reconcile sentinel: Iris re-queues the task) is not a finished task."""
    iris_states = ["PENDING", "BUILDING", "RUNNING", "SUCCEEDED", "FAILED", "KILLED", "WORKER_FAILED",
                   "UNSCHEDULABLE", "ASSIGNED", "PREEMPTED", "COSCHED_FAILED", "MISSING"]  # fmt: skip
    tasks = [{**TASK, "taskId": f"{ROOT}simple/{i}", "state": f"TASK_STATE_{s}"} for i, s in enumerate(iris_states)]
    read = _iris({LIST_TASKS: {"tasks": tasks}}).list_tasks(JOB["jobId"])
    assert [t.state.name for t in read] == iris_states
    assert TaskState.MISSING.value == "missing" and not task_finished(TaskState.MISSING)
