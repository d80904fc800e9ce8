"""The controller interface over a real Iris controller: Connect, HTTP/1.1, JSON.

What we send and read (seen with marin-iris 0.2.227; the field names are the contract):
- `ListWorkers {}` -> workers[]{workerId, healthy, address, metadata.attributes{k: {stringValue|intValue}}}
- `LaunchJob {name "/<root>/<test>", replicas, entrypoint.runCommand.argv, resources, coscheduling,
  constraints}` -> {jobId}. Iris insists on the `/<user>/<job>` form for names.
- `ListJobs {query: {jobIdPrefix "/<root>/", limit}}` -> jobs[]{jobId, name, state JOB_STATE_*, error,
  exitCode, pendingReason, taskStateCounts, submittedAt.epochMs, finishedAt.epochMs}
- `ListTasks {jobId}` -> tasks[]{taskId "/<root>/<test>/<i>", state, workerId, exitCode, error, attempts[]}
- `TerminateJob {jobId}`; `GetAutoscalerStatus {}` -> status{groups, currentDemand, recentActions,
  lastRoutingDecision.unmetEntries}
- task logs: `finelog.logging.LogService/FetchLogs` on the log server (found with
  `EndpointService/ListEndpoints` `/system/log-server`, else the controller itself, as older
  releases served it there), keys `<taskId>:<attempt>`.
Required fields missing from a reply raise ApiMismatch naming the method and the field;
optional ones default. Iris fills the job-level pending reason, the task-level one rarely.
"""

import contextlib
import json
import select
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from common.controller_target import JOB_RUN_ID_ENV, ControllerTarget
from common.deadline import Deadline
from workers.controller.api import RPC_TIMEOUT_S, not_ours, rpc_timeout
from workers.controller.connect_http import ConnectClient, read_token
from workers.controller.model import (
    Action,
    ApiMismatch,
    AutoscalerStatus,
    ControllerError,
    GroupStatus,
    Job,
    JobRequest,
    SliceStatus,
    Task,
    Unmet,
    VmStatus,
    Worker,
    job_state,
    task_state,
)
from workers.controller.timefmt import rfc3339_ms

CONTROLLER = "iris.cluster.ControllerService"
ENDPOINTS = "iris.cluster.EndpointService"
FETCH_LOGS = "finelog.logging.LogService/FetchLogs"
LOG_SERVER_ENDPOINT = "/system/log-server"
_CHILD_SCRIPT = (Path(__file__).parent / "iris_child.py").read_text()
CHILD_TIMEOUT_S = 60.0
LIST_JOBS_LIMIT = 500  # Iris's own maximum per page; a smoke run has a handful of jobs
HEALTH_RETRY_S = 0.2
# Iris workers push task output to the log service in batches, about every second.
LOG_FLUSH_S = 3.0
LOG_FLUSH_RETRY_S = 0.2
_OPS = {"eq": "EQ", "ne": "NE", "exists": "EXISTS", "not_exists": "NOT_EXISTS"}
# The smallest request Iris accepts: a tenth of a core and 100 MiB per task.
TASK_CPU_MILLICORES = 100
TASK_MEMORY_BYTES = 100 * 1024 * 1024


def required(obj: Mapping[str, Any], key: str, method: str) -> Any:
    if key not in obj:
        raise ApiMismatch(method, key)
    return obj[key]


def _int(value: Any) -> int:
    """Connect's JSON writes 64-bit integers as strings."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _time(value: Any) -> str | None:
    ms = _int(value.get("epochMs")) if isinstance(value, dict) else 0
    return rfc3339_ms(ms) if ms > 0 else None


def _attribute(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("stringValue", "intValue", "floatValue", "boolValue"):
            if key in value:
                return str(value[key]).lower() if key == "boolValue" else str(value[key])
    return str(value)


def submits_child(child: JobRequest) -> tuple[str, ...]:
    """A task that submits `child` the way an Iris task does (iris_child.py, standard library only)."""
    spec = {
        "name": child.name,
        "argv": list(child.argv),
        "constraints": [{"key": c.key, "value": c.value} for c in child.constraints],
        "timeout_s": child.timeout_s or CHILD_TIMEOUT_S,
    }
    return ("python3", "-c", _CHILD_SCRIPT, json.dumps(spec))


def tpu_hosts(variant: str) -> int:
    """VM hosts of one TPU slice by its type name (GCP's public topology tables).

    v5e/v6e (`v5litepod-16`, `v6e-32`) count chips, four per host beyond one 8-chip host;
    v4/v5p (`v4-32`) count TensorCores, two per chip, four chips per host.
    """
    generation, _, size = variant.rpartition("-")
    if not size.isdigit():
        return 1
    chips = int(size) // 2 if generation in ("v4", "v5p", "v3", "v2") else int(size)
    single_host_max = 4 if generation in ("v4", "v5p", "v3", "v2") else 8
    return 1 if chips <= single_host_max else chips // 4


class IrisController:
    # What Iris passes to a task's children (IRIS_JOB_CONSTRAINTS, INHERITED_CONSTRAINT_KEYS in 0.2.227).
    inherited_constraint_keys: frozenset[str] | None = frozenset({"region", "zone"})

    def __init__(
        self, client: ConnectClient, target: ControllerTarget, deadline: Deadline, call_limit_s: float = RPC_TIMEOUT_S
    ) -> None:
        self.client = client
        self.call_limit_s = call_limit_s
        self.deadline = deadline
        self.target = target
        self.root = target.job_prefix
        self._log_server: ConnectClient | None = None

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, target: ControllerTarget, deadline: Deadline, call_limit_s: float = RPC_TIMEOUT_S
    ) -> Iterator["IrisController"]:
        with ConnectClient(target.address, read_token(target.token_file, target.token_env)) as client:
            iris = cls(client, target, deadline, call_limit_s)
            try:
                yield iris
            finally:
                if iris._log_server is not None:
                    iris._log_server.close()

    def _call(self, method: str, body: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        return self.client.call(method, body, timeout_s if timeout_s is not None else self._timeout())

    def _timeout(self) -> float:
        return rpc_timeout(self.deadline, self.call_limit_s)

    def serving(self, timeout_s: float, stop_fd: int | None = None) -> bool:
        end = Deadline.after(min(timeout_s, self.deadline.remaining()))
        while not end.expired():
            if self.client.get_ok("health", max(0.05, end.cap(1.0))):
                return True
            ready, _, _ = select.select([stop_fd] if stop_fd is not None else [], [], [], end.cap(HEALTH_RETRY_S))
            if ready:
                return False
        return False

    def list_workers(self) -> list[Worker]:
        method = f"{CONTROLLER}/ListWorkers"
        reply = self._call(method, {})
        workers = []
        for w in reply.get("workers", []):
            attributes = (w.get("metadata") or {}).get("attributes") or {}
            workers.append(
                Worker(
                    worker_id=str(required(w, "workerId", method)),
                    healthy=bool(w.get("healthy", False)),
                    address=str(w.get("address", "")),
                    attributes={str(k): _attribute(v) for k, v in attributes.items()},
                )
            )
        return workers

    def launch(self, request: JobRequest) -> str:
        method = f"{CONTROLLER}/LaunchJob"
        return str(required(self._call(method, self.launch_body(request)), "jobId", method))

    def launch_body(self, request: JobRequest) -> dict[str, Any]:
        resources: dict[str, Any] = {"cpuMillicores": TASK_CPU_MILLICORES, "memoryBytes": str(TASK_MEMORY_BYTES)}
        if request.device in ("tpu", "gpu"):
            resources["device"] = {request.device: {"variant": request.variant, "count": request.count}}
        argv = submits_child(request.child) if request.child else request.argv
        body: dict[str, Any] = {
            "name": self.root + request.name,
            "replicas": request.replicas,
            "entrypoint": {"runCommand": {"argv": list(argv)}},
            "resources": resources,
        }
        if self.target.run_id:
            body["environment"] = {"envVars": {JOB_RUN_ID_ENV: self.target.run_id}}
        if request.timeout_s:
            # Iris's own backstop, should the tests child die without terminating its jobs.
            backstop = {"milliseconds": str(int(request.timeout_s * 1000))}
            body["timeout"] = body["schedulingTimeout"] = backstop
        if request.group_by:
            body["coscheduling"] = {"groupBy": request.group_by}
        if request.constraints:
            body["constraints"] = [
                {"key": c.key, "op": f"CONSTRAINT_OP_{_OPS[c.op]}", "value": {"stringValue": c.value}}
                for c in request.constraints
            ]
        return body

    def list_jobs(self) -> list[Job]:
        method = f"{CONTROLLER}/ListJobs"
        reply = self._call(method, {"query": {"jobIdPrefix": self.root, "limit": LIST_JOBS_LIMIT}})
        # The server's prefix is a filter we ask for; `owns` is the rule we keep (an Iris that
        # ignored jobIdPrefix, as a proxy or an older release might, lists everyone's jobs).
        jobs = (self._job(j, method) for j in reply.get("jobs", []))
        return [j for j in jobs if self.target.owns(j.job_id)]

    @staticmethod
    def _job(j: Mapping[str, Any], method: str) -> Job:
        job_id = str(required(j, "jobId", method))
        return Job(
            job_id=job_id,
            name=str(j.get("name", job_id)),
            state=job_state(str(required(j, "state", method))),
            error=str(j.get("error", "")),
            exit_code=_int(j.get("exitCode")),
            pending_reason=str(j.get("pendingReason", "")),
            task_state_counts={str(k): _int(v) for k, v in (j.get("taskStateCounts") or {}).items()},
            submitted_at=_time(j.get("submittedAt")),
            finished_at=_time(j.get("finishedAt")),
        )

    def list_tasks(self, job_id: str) -> list[Task]:
        method = f"{CONTROLLER}/ListTasks"
        tasks = []
        for t in self._call(method, {"jobId": job_id}).get("tasks", []):
            task_id = str(required(t, "taskId", method))
            index = task_id.rsplit("/", 1)[-1]
            tasks.append(
                Task(
                    task_id=task_id,
                    task_index=int(index) if index.isdigit() else _int(t.get("taskIndex")),
                    state=task_state(str(required(t, "state", method))),
                    worker_id=str(t.get("workerId", "")),
                    pending_reason=str(t.get("pendingReason", "")),
                    can_be_scheduled=bool(t.get("canBeScheduled", True)),
                    exit_code=_int(t.get("exitCode")),
                    error=str(t.get("error", "")),
                    attempts=len(t.get("attempts") or []),
                )
            )
        return tasks

    def terminate(self, job_ids: Sequence[str], timeout_s: float) -> dict[str, ControllerError | None]:
        # One keep-alive connection, one call after another: a smoke run has a handful of
        # jobs, and the whole loop shares one time budget.
        end = Deadline.after(timeout_s)
        done: dict[str, ControllerError | None] = {}
        for job_id in job_ids:
            if not self.target.owns(job_id):
                done[job_id] = not_ours("TerminateJob", job_id, self.root)
                continue
            try:
                self._call(f"{CONTROLLER}/TerminateJob", {"jobId": job_id}, max(0.05, end.remaining()))
                done[job_id] = None
            except ControllerError as exc:
                done[job_id] = exc
        return done

    def autoscaler(self) -> AutoscalerStatus:
        method = f"{CONTROLLER}/GetAutoscalerStatus"
        status = required(self._call(method, {}), "status", method)
        demand = status.get("currentDemand") or {}
        routing = status.get("lastRoutingDecision") or {}
        return AutoscalerStatus(
            groups=tuple(self._group(g, demand, method) for g in status.get("groups", [])),
            current_demand=sum(_int(v) for v in demand.values()) if isinstance(demand, dict) else _int(demand),
            actions=tuple(
                Action(
                    timestamp=_time(a.get("timestamp")),
                    action_type=str(a.get("actionType", "")),
                    scale_group=str(a.get("scaleGroup", "")),
                    slice_id=str(a.get("sliceId", "")),
                    reason=str(a.get("reason", "")),
                    status=str(a.get("status", "")),
                )
                for a in status.get("recentActions", [])
            ),
            unmet=tuple(
                Unmet(
                    reason=str(u.get("reason", "")),
                    job_id=",".join((u.get("entry") or {}).get("taskIds", [])[:3]),
                    tasks=len((u.get("entry") or {}).get("taskIds", [])),
                )
                for u in routing.get("unmetEntries", [])
            ),
        )

    @staticmethod
    def _group(g: Mapping[str, Any], demand: Any, method: str) -> GroupStatus:
        name = str(required(g, "name", method))
        slices = tuple(
            SliceStatus(
                slice_id=str(s.get("sliceId", "")),
                state=str(s.get("state", "")),
                vms=tuple(
                    VmStatus(
                        vm_id=str(v.get("vmId", "")),
                        state=str(v.get("state", "")).removeprefix("VM_STATE_").lower(),
                        worker_id=str(v.get("workerId", "")),
                        healthy=v.get("workerHealthy"),
                    )
                    for v in s.get("vms", [])
                ),
            )
            for s in g.get("slices", [])
        )
        device, variant = str(g.get("deviceType", "cpu")) or "cpu", str(g.get("deviceVariant", ""))
        seen_hosts = max((len(s.vms) for s in slices), default=0)
        return GroupStatus(
            name=name,
            device=device,
            variant=variant,
            hosts_per_slice=seen_hosts or (tpu_hosts(variant) if device == "tpu" else 1),
            attributes={"region": str(g["region"])} if g.get("region") else {},
            current_demand=_int(demand.get(name)) if isinstance(demand, dict) else _int(g.get("currentDemand")),
            slices=slices,
        )

    # -- logs ---------------------------------------------------------------------

    def log_server(self) -> ConnectClient:
        """The log service's client: its own address where Iris advertises one, else the controller's."""
        if self._log_server is None:
            address = self.client.base_url
            try:
                reply = self._call(f"{ENDPOINTS}/ListEndpoints", {"prefix": LOG_SERVER_ENDPOINT, "exact": True})
                endpoints = reply.get("endpoints") or []
                address = str(endpoints[0].get("address") or address) if endpoints else address
            except ApiMismatch:
                pass  # an older Iris: FetchLogs on the controller's own port
            self._log_server = ConnectClient(address, self.client.token)
        return self._log_server

    def fetch_logs(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.log_server().call(FETCH_LOGS, body, self._timeout())

    def task_log_tail(self, job_id: str, task_index: int, lines: int) -> list[str]:
        """The task's last lines. Workers push output in batches, so a task that has just ended
        may not be in the log service yet: an empty answer is asked again, within LOG_FLUSH_S."""
        body = {
            "source": f"{job_id}/{task_index}:",
            "matchScope": "MATCH_SCOPE_PREFIX",
            "tail": True,
            "maxLines": lines,
        }
        flushed = Deadline.after(min(LOG_FLUSH_S, self.deadline.remaining()))
        while True:
            entries = sorted(self.fetch_logs(body).get("entries", []), key=lambda e: _int(e.get("seq")))
            if entries or flushed.expired():
                return [str(e.get("data", "")) for e in entries]
            time.sleep(flushed.cap(LOG_FLUSH_RETRY_S))
