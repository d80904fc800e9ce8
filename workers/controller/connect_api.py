"""The controller interface over a real Iris controller: Connect, HTTP/1.1, JSON.

What we send and read (seen with marin-iris 0.2.227; the field names are the contract):
- `ListWorkers {}` -> workers[]{workerId, healthy, address, runningJobIds, metadata{cpuCount (cores it
  schedules by), attributes{k: {stringValue|intValue}}}}
- `LaunchJob {name "/<root>/<test>", replicas, entrypoint{runCommand.argv, workdirFiles{name: base64}},
  resources{cpuMillicores, memoryBytes, device}, coscheduling, constraints, priorityBand}` -> {jobId}.
  Iris insists on the `/<user>/<job>` form for names; it offloads workdir files over 10 KB to its blob
  store, and refuses (failed_precondition) a job no group's VM could hold.
- `ListJobs {query: {jobIdPrefix "/<root>/", limit}}` -> jobs[]{jobId, name, state JOB_STATE_*, error,
  exitCode, pendingReason, taskStateCounts, submittedAt.epochMs, finishedAt.epochMs}
- `ListTasks {jobId}` -> tasks[]{taskId "/<root>/<test>/<i>", state, workerId, exitCode, error, attempts[]}
- `TerminateJob {jobId}`; `GetAutoscalerStatus {}` -> status{groups, currentDemand, recentActions,
  lastRoutingDecision.unmetEntries}
- the fleet checks' (read-only): `ExecuteRawQuery {sql: "SELECT 1"}` -> {columns, rows} (timed);
  `GetProcessStatus {maxLogLines: 1}` -> processInfo{pythonVersion, memoryRssBytes, threadCount, openFdCount,
  provenance{treeHash, baseCommit}}; `GetCurrentUser {}` -> {userId, role}; `GetSchedulerState {}` ->
  userBudgets[]{userId, budgetLimit, budgetSpent, maxBand, effectiveBand} (only users with a budget row or
  spend); GetAutoscalerStatus groups' availabilityStatus, availabilityReason, backoffUntil, consecutiveFailures
- acting in a running task of the run (the tests exec_in_container, profile_task): `ExecInContainer
  {taskId "<jobId>/<i>", command[], timeoutSeconds}` -> {exitCode, stdout, stderr, error};
  `ProfileTask {target "<jobId>/<i>", durationSeconds, profileType.cpu{format RAW, rateHz, native}}` ->
  {profileData (base64), error}. Iris's process runtime answers a stand-in when py-spy is not on its
  worker's PATH (PROFILE_STUB): that is `unimplemented` here, the runtime cannot profile.
- task logs: `finelog.logging.LogService/FetchLogs` through the controller's
  `/proxy/system.log-server/` route, else where the registry says (workers.controller.log_server),
  keys `<taskId>:<attempt>`; `minLevel` ("WARNING") filters, each entry's `level` is `LOG_LEVEL_*`
  (absent: UNKNOWN).
- endpoints: `EndpointService/ListEndpoints {prefix}` -> endpoints[]{name, address, taskId}; a task
  registers one with `EndpointService/RegisterEndpoint` (iris_child.py). Named ports: LaunchJob's
  `ports`, given to each task as `IRIS_PORT_<NAME>`.
Every reply is read through `reply.Field` accessors: a required field missing, or any field
of the wrong JSON type, raises ApiMismatch naming the method and the path
(`ListJobs: jobs[].taskStateCounts is a list, expected an object`); absent optional fields
default. Iris fills the job-level pending reason, the task-level one rarely.
"""

import base64
import contextlib
import json
import math
import select
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from common.controller_target import JOB_RUN_ID_ENV, ControllerTarget
from common.deadline import Deadline
from common.jsonshape import JsonObject
from workers.controller import model
from workers.controller.calls import RPC_TIMEOUT_S, not_ours, rpc_timeout
from workers.controller.connect_http import ConnectClient
from workers.controller.credentials import Credentials
from workers.controller.log_server import FETCH_LOGS, resolve_log_service
from workers.controller.reply import Field
from workers.controller.timefmt import rfc3339_ms

CONTROLLER = "iris.cluster.ControllerService"
ENDPOINTS = "iris.cluster.EndpointService"
_CHILD_SCRIPT = (Path(__file__).parent / "iris_child.py").read_text()
CHILD_TIMEOUT_S = 60.0
LIST_JOBS_LIMIT = 500  # Iris's own maximum per page; a smoke run has a handful of jobs
HEALTH_RETRY_S = 0.2
# `/health` answers that mean the controller serves. With auth on, Iris checks a bearer token on
# every path, `/health` included, and answers a bad one 401: it is up, and the first call reports
# the refusal (`controller_unauthenticated`) instead of a run waiting out its deadline for health.
HEALTH_ANSWERED = frozenset({200, 401, 403})
# Iris workers push task output to the log service in batches, about every second.
LOG_FLUSH_S = 3.0
LOG_FLUSH_RETRY_S = 0.2
_OPS = {"eq": "EQ", "ne": "NE", "exists": "EXISTS", "not_exists": "NOT_EXISTS"}
# The smallest request Iris accepts: a tenth of a core (model.TASK_CPU_MILLICORES) and 100 MiB per task.
TASK_MEMORY_BYTES = 100 * 1024 * 1024
# Worker attributes that are numbers to us (a host's index in its slice, the slice's host count):
# checked here, so a number no slice has never reaches a message or an argv.
_HOST_NUMBERS = ("tpu-worker-id", "tpu-vm-count")
MAX_SLICE_HOSTS = 100_000
MAX_COUNT = 2**31 - 1  # demands and task counts: summed, and still within int64
# A group's availabilityStatus while Iris will not scale it up (vm.proto ScaleGroupStatus).
BLOCKED = frozenset({"backoff", "quota_exceeded"})
# What Iris's process runtime answers for a CPU profile when py-spy is not on its worker's PATH
# (iris/cluster/runtime/process.py `_cpu_profile_stub`, 0.2.227): a stand-in, not a profile.
PROFILE_STUB = b"py-spy unavailable in local mode"
NO_PROFILER = (
    "the task's runtime cannot profile: Iris answered its stand-in 'py-spy unavailable in local mode' "
    "(its process runtime, without py-spy on the worker's PATH)"
)
PROFILE_RATE_HZ = 100


def _time(value: Field) -> str | None:
    ms = value.at("epochMs").as_epoch_ms()
    return rfc3339_ms(ms) if ms > 0 else None


def _seconds(wanted_s: float, call_s: float) -> int:
    """Iris's whole seconds for a command or a profile: what was asked, ending a second before the
    call does (so its answer comes back within the call), and at least 1 (Iris reads 0 as its default)."""
    return max(1, min(math.ceil(wanted_s), math.floor(call_s) - 1))


def _level(name: str) -> model.LogLevel:
    """`LOG_LEVEL_WARNING` -> warning; absent (proto3's zero) or a level we do not know -> unknown."""
    try:
        return model.LogLevel(name.removeprefix("LOG_LEVEL_").lower())
    except ValueError:
        return model.LogLevel.UNKNOWN


def _band(name: str) -> str:
    """`PRIORITY_BAND_BATCH` -> `batch`."""
    return name.removeprefix("PRIORITY_BAND_").lower()


def _attribute(value: Field) -> str:
    """An AttributeValue (`{stringValue|intValue|floatValue|boolValue}`), or a bare scalar."""
    if value.is_object:
        if value.at("intValue").present:
            return str(value.at("intValue").as_int())
        for key in ("stringValue", "floatValue", "boolValue"):
            if value.at(key).present:
                return value.at(key).as_scalar_text()
        return ""
    return value.as_scalar_text()


def _attributes(metadata: Field) -> dict[str, str]:
    """A worker's attributes as text; the numeric ones in range (any other text is a name,
    which discovery checks as one)."""
    fields = metadata.at("attributes").as_map()
    found = {k: _attribute(v) for k, v in fields.items()}
    for key in _HOST_NUMBERS:
        if found.get(key, "").isdigit():
            Field(fields[key].method, fields[key].path, found[key]).as_int(0, 0, MAX_SLICE_HOSTS)
    return found


def _constraint_value(c: model.Constraint) -> JsonObject:
    """Iris compares typed values: its numeric attributes (a slice host's index) match an intValue only."""
    if c.key in _HOST_NUMBERS and c.value.isdigit():
        return {"intValue": c.value}
    return {"stringValue": c.value}


def submits_child(child: model.JobRequest) -> tuple[str, ...]:
    """A task that submits `child` the way an Iris task does (iris_child.py, standard library only)."""
    spec = {
        "name": child.name,
        "argv": list(child.argv),
        "constraints": [{"key": c.key, "value": c.value} for c in child.constraints],
        "timeout_s": child.timeout_s or CHILD_TIMEOUT_S,
    }
    return ("python3", "-c", _CHILD_SCRIPT, json.dumps(spec))


def registers_endpoint(request: model.JobRequest) -> tuple[str, ...]:
    """A task that registers `request.endpoint` and holds it, as an Iris task does (iris_child.py)."""
    spec = {"endpoint": request.endpoint, "address": model.ENDPOINT_ADDRESS, "hold_s": request.endpoint_hold_s}
    return ("python3", "-c", _CHILD_SCRIPT, json.dumps(spec))


def task_argv(request: model.JobRequest) -> tuple[str, ...]:
    """What the job's tasks run: the request's argv, or the task client's work it asks for."""
    if request.child:
        return submits_child(request.child)
    return registers_endpoint(request) if request.endpoint else request.argv


# These generations name a slice by TensorCores, two per chip; the others by chips.
_CORE_NAMED = frozenset({"v2", "v3", "v4", "v5p"})


def _tpu_chips(variant: str) -> int:
    generation, _, size = variant.rpartition("-")
    if not size.isdigit():
        return 0
    return int(size) // 2 if generation in _CORE_NAMED else int(size)


def tpu_hosts(variant: str) -> int:
    """VM hosts of one TPU slice by its type name (GCP's public topology tables).

    v5e/v6e (`v5litepod-16`, `v6e-32`) count chips, four per host beyond one 8-chip host;
    v4/v5p (`v4-32`) count TensorCores, two per chip, four chips per host.
    """
    chips = _tpu_chips(variant)
    single_host_max = 4 if variant.rpartition("-")[0] in _CORE_NAMED else 8
    return 1 if chips <= single_host_max else chips // 4


def tpu_chips_per_host(variant: str) -> int:
    """Chips on each host of a slice of this TPU type (0: a name we cannot read)."""
    return _tpu_chips(variant) // tpu_hosts(variant)


def _device_count(metadata: Field) -> int:
    """`metadata.device.{tpu|gpu}.count`: the chips or GPUs Iris gave this worker."""
    device = metadata.at("device")
    for kind in ("tpu", "gpu"):
        if device.at(kind).present:
            return device.at(kind).at("count").as_int(0, 0, MAX_COUNT)
    return 0


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
        self._log_service: model.LogService | None = None

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, target: ControllerTarget, deadline: Deadline, call_limit_s: float = RPC_TIMEOUT_S
    ) -> Iterator["IrisController"]:
        credentials = Credentials.for_target(target)
        with ConnectClient(target.address, credentials, max_reply_bytes=target.max_reply_bytes) as client:
            yield cls(client, target, deadline, call_limit_s)

    def _call(self, method: str, body: JsonObject, timeout_s: float | None = None) -> Field:
        reply = self.client.call(method, body, timeout_s if timeout_s is not None else self._timeout())
        return Field.of(method, reply)

    def _timeout(self) -> float:
        return rpc_timeout(self.deadline, self.call_limit_s)

    def serving(self, timeout_s: float, stop_fd: int | None = None) -> bool:
        end = self.deadline.within(timeout_s)
        while not end.expired():
            if self.client.get_status("health", max(0.05, end.cap(1.0))) in HEALTH_ANSWERED:
                return True
            ready, _, _ = select.select([stop_fd] if stop_fd is not None else [], [], [], end.cap(HEALTH_RETRY_S))
            if ready:
                return False
        return False

    def list_workers(self) -> list[model.Worker]:
        method = f"{CONTROLLER}/ListWorkers"
        return [
            model.Worker(
                worker_id=w.at("workerId").required().as_str(),
                healthy=w.at("healthy").as_bool(),
                address=w.at("address").as_str(),
                attributes=_attributes(w.at("metadata")),
                device_count=_device_count(w.at("metadata")),
                # Iris schedules by the cores a worker advertises (its group's cpu, else the host's).
                cpu_millicores=w.at("metadata").at("cpuCount").as_int(0, 0, MAX_COUNT // 1000) * 1000,
                running=len(w.at("runningJobIds").as_list()),
            )
            for w in self._call(method, {}).at("workers").as_list()
        ]

    def launch(self, request: model.JobRequest) -> str:
        method = f"{CONTROLLER}/LaunchJob"
        return self._call(method, self.launch_body(request)).at("jobId").required().as_str()

    def launch_body(self, request: model.JobRequest) -> JsonObject:
        cpu = model.TASK_CPU_MILLICORES if request.cpu_millicores is None else request.cpu_millicores
        memory = TASK_MEMORY_BYTES if request.memory_bytes is None else request.memory_bytes
        resources: JsonObject = {"cpuMillicores": cpu, "memoryBytes": str(memory)}
        if request.device in ("tpu", "gpu"):
            resources["device"] = {request.device: {"variant": request.variant, "count": request.count}}
        entrypoint: JsonObject = {"runCommand": {"argv": list(task_argv(request))}}
        if request.workdir_files:
            files: JsonObject = {name: base64.b64encode(data).decode() for name, data in request.workdir_files}
            entrypoint["workdirFiles"] = files
        body: JsonObject = {
            "name": self.root + request.name,
            "replicas": request.replicas,
            "entrypoint": entrypoint,
            "resources": resources,
            # Explicit, not INHERIT: Iris resolves a root job's INHERIT to interactive, but
            # the run says which band it measures.
            "priorityBand": (request.priority_band or self.target.priority_band).wire,
        }
        if self.target.run_id:
            body["environment"] = {"envVars": {JOB_RUN_ID_ENV: self.target.run_id}}
        if request.timeout_s:
            # Iris's own backstop, should the tests child die without terminating its jobs.
            backstop: JsonObject = {"milliseconds": str(int(request.timeout_s * 1000))}
            body["timeout"] = body["schedulingTimeout"] = backstop
        if request.ports:
            body["ports"] = list(request.ports)
        if request.group_by:
            body["coscheduling"] = {"groupBy": request.group_by}
        if request.constraints:
            body["constraints"] = [
                {"key": c.key, "op": f"CONSTRAINT_OP_{_OPS[c.op]}", "value": _constraint_value(c)}
                for c in request.constraints
            ]
        return body

    def list_jobs(self) -> list[model.Job]:
        method = f"{CONTROLLER}/ListJobs"
        reply = self._call(method, {"query": {"jobIdPrefix": self.root, "limit": LIST_JOBS_LIMIT}})
        # The server's prefix is a filter we ask for; `owns` is the rule we keep (an Iris that
        # ignored jobIdPrefix, as a proxy or an older release might, lists everyone's jobs).
        jobs = (self._job(j) for j in reply.at("jobs").as_list())
        return [j for j in jobs if self.target.owns(j.job_id)]

    @staticmethod
    def _job(j: Field) -> model.Job:
        job_id = j.at("jobId").required().as_str()
        return model.Job(
            job_id=job_id,
            name=j.at("name").as_str(job_id),
            state=model.job_state(j.at("state").required().as_str()),
            error=j.at("error").as_str(),
            exit_code=j.at("exitCode").as_int(),
            pending_reason=j.at("pendingReason").as_str(),
            task_state_counts={k: v.as_int(0, 0, MAX_COUNT) for k, v in j.at("taskStateCounts").as_map().items()},
            submitted_at=_time(j.at("submittedAt")),
            finished_at=_time(j.at("finishedAt")),
        )

    def list_tasks(self, job_id: str) -> list[model.Task]:
        method = f"{CONTROLLER}/ListTasks"
        return [self._task(t) for t in self._call(method, {"jobId": job_id}).at("tasks").as_list()]

    @staticmethod
    def _task(t: Field) -> model.Task:
        task_id = t.at("taskId").required().as_str()
        index = task_id.rsplit("/", 1)[-1]
        by_id = Field(t.method, f"{t.path}.taskId", index) if index.isdigit() else None
        return model.Task(
            task_id=task_id,
            task_index=(by_id or t.at("taskIndex")).as_int(0, 0, MAX_COUNT),
            state=model.task_state(t.at("state").required().as_str()),
            worker_id=t.at("workerId").as_str(),
            pending_reason=t.at("pendingReason").as_str(),
            can_be_scheduled=t.at("canBeScheduled").as_bool(True),
            exit_code=t.at("exitCode").as_int(),
            error=t.at("error").as_str(),
            attempts=len(t.at("attempts").as_list()),
        )

    def terminate(self, job_ids: Sequence[str], timeout_s: float) -> dict[str, model.ControllerError | None]:
        # One keep-alive connection, one call after another: a smoke run has a handful of
        # jobs, and the whole loop shares one time budget.
        end = Deadline.after(timeout_s)
        done: dict[str, model.ControllerError | None] = {}
        for job_id in job_ids:
            if not self.target.owns(job_id):
                done[job_id] = not_ours("TerminateJob", job_id, self.root)
                continue
            try:
                self._call(f"{CONTROLLER}/TerminateJob", {"jobId": job_id}, max(0.05, end.remaining()))
                done[job_id] = None
            except model.ControllerError as exc:
                done[job_id] = exc
        return done

    def autoscaler(self) -> model.AutoscalerStatus:
        method = f"{CONTROLLER}/GetAutoscalerStatus"
        status = self._call(method, {}).at("status").required()
        demand = status.at("currentDemand")
        # A map of demand by group, or (older releases) one number.
        by_group = {k: v.as_int(0, 0, MAX_COUNT) for k, v in demand.as_map().items()} if demand.is_object else None
        return model.AutoscalerStatus(
            groups=tuple(self._group(g, by_group) for g in status.at("groups").as_list()),
            current_demand=sum(by_group.values()) if by_group is not None else demand.as_int(0, 0, MAX_COUNT),
            actions=tuple(
                model.Action(
                    timestamp=_time(a.at("timestamp")),
                    action_type=a.at("actionType").as_str(),
                    scale_group=a.at("scaleGroup").as_str(),
                    slice_id=a.at("sliceId").as_str(),
                    reason=a.at("reason").as_str(),
                    status=a.at("status").as_str(),
                )
                for a in status.at("recentActions").as_list()
            ),
            unmet=tuple(self._unmet(u) for u in status.at("lastRoutingDecision").at("unmetEntries").as_list()),
        )

    @staticmethod
    def _unmet(u: Field) -> model.Unmet:
        task_ids = [t.as_str() for t in u.at("entry").at("taskIds").as_list()]
        return model.Unmet(reason=u.at("reason").as_str(), job_id=",".join(task_ids[:3]), tasks=len(task_ids))

    @staticmethod
    def _group(g: Field, demand: Mapping[str, int] | None) -> model.GroupStatus:
        name = g.at("name").required().as_str()
        slices = tuple(
            model.SliceStatus(
                slice_id=s.at("sliceId").as_str(),
                state=s.at("state").as_str(),
                vms=tuple(
                    model.VmStatus(
                        vm_id=v.at("vmId").as_str(),
                        state=v.at("state").as_str().removeprefix("VM_STATE_").lower(),
                        worker_id=v.at("workerId").as_str(),
                        healthy=v.at("workerHealthy").as_optional_bool(),
                    )
                    for v in s.at("vms").as_list()
                ),
            )
            for s in g.at("slices").as_list()
        )
        device, variant = g.at("deviceType").as_str() or "cpu", g.at("deviceVariant").as_str()
        region = g.at("region").as_str()
        availability = g.at("availabilityStatus").as_str()
        backoff_ms = g.at("backoffUntil").at("epochMs").as_epoch_ms()
        # Iris 0.2.227 lists a group's slices without their VMs: the TPU type's table decides.
        seen_hosts = max((len(s.vms) for s in slices), default=0)
        return model.GroupStatus(
            name=name,
            device=device,
            variant=variant,
            hosts_per_slice=seen_hosts or (tpu_hosts(variant) if device == "tpu" else 1),
            chips_per_host=tpu_chips_per_host(variant) if device == "tpu" else 0,
            attributes={"region": region} if region else {},
            # The summary of its config Iris puts on the wire; a worker names them the same way.
            declares={"scale-group": name, "device-type": device, "device-variant": variant}
            | ({"region": region} if region else {}),
            backoff=availability in BLOCKED or backoff_ms > time.time() * 1000,
            availability=availability,
            availability_reason=g.at("availabilityReason").as_str(),
            consecutive_failures=g.at("consecutiveFailures").as_int(0, 0, MAX_COUNT),
            current_demand=demand.get(name, 0) if demand is not None else g.at("currentDemand").as_int(0, 0, MAX_COUNT),
            slices=slices,
        )

    # -- the controller's vitals -------------------------------------------------

    def database_ping(self) -> float:
        started = time.monotonic()
        self._call(f"{CONTROLLER}/ExecuteRawQuery", {"sql": "SELECT 1"}).at("rows").as_list()
        return time.monotonic() - started

    def process_status(self) -> model.ProcessStatus:
        info = self._call(f"{CONTROLLER}/GetProcessStatus", {"maxLogLines": 1}).at("processInfo").required()
        provenance = info.at("provenance")
        return model.ProcessStatus(
            tree_hash=provenance.at("treeHash").as_str(),
            base_commit=provenance.at("baseCommit").as_str(),
            python_version=info.at("pythonVersion").as_str(),
            rss_bytes=info.at("memoryRssBytes").as_int(0, 0, 2**62),
            threads=info.at("threadCount").as_int(0, 0, MAX_COUNT),
            fds=info.at("openFdCount").as_int(0, 0, MAX_COUNT),
        )

    def user_band(self) -> model.UserBand:
        user = self._call(f"{CONTROLLER}/GetCurrentUser", {}).at("userId").as_str()
        for b in self._call(f"{CONTROLLER}/GetSchedulerState", {}).at("userBudgets").as_list():
            if b.at("userId").as_str() == user:
                return model.UserBand(
                    user=user,
                    effective_band=_band(b.at("effectiveBand").as_str()),
                    max_band=_band(b.at("maxBand").as_str()),
                    budget_limit=b.at("budgetLimit").as_int(),
                    budget_spent=b.at("budgetSpent").as_int(),
                )
        return model.UserBand(user)

    # -- acting in a running task of the run ---------------------------------------

    def exec_in_container(
        self, job_id: str, task_index: int, argv: Sequence[str], timeout_s: float
    ) -> model.ExecResult:
        method = f"{CONTROLLER}/ExecInContainer"
        task_id, call_s = self._task_id(method, job_id, task_index), self._timeout()
        body: JsonObject = {"taskId": task_id, "command": list(argv), "timeoutSeconds": _seconds(timeout_s, call_s)}
        reply = self._call(method, body, call_s)
        return model.ExecResult(
            exit_code=reply.at("exitCode").as_int(0, -(2**31), 2**31 - 1),
            stdout=reply.at("stdout").as_str(),
            stderr=reply.at("stderr").as_str(),
            error=reply.at("error").as_str(),
        )

    def profile_task(self, job_id: str, task_index: int, duration_s: float) -> model.Profile:
        method = f"{CONTROLLER}/ProfileTask"
        task_id, call_s = self._task_id(method, job_id, task_index), self._timeout()
        cpu: JsonObject = {"format": "RAW", "rateHz": PROFILE_RATE_HZ, "native": False}
        body: JsonObject = {
            "target": task_id,
            "durationSeconds": _seconds(duration_s, call_s),
            "profileType": {"cpu": cpu},
        }
        reply = self._call(method, body, call_s)
        data = reply.at("profileData").as_bytes()
        if data.strip() == PROFILE_STUB:
            raise model.ControllerError(model.ErrorCode.UNIMPLEMENTED, method, NO_PROFILER)
        return model.Profile(data, model.ProfileFormat.RAW, reply.at("error").as_str())

    def _task_id(self, method: str, job_id: str, task_index: int) -> str:
        """Iris's name of the run's task (`<jobId>/<index>`); a job not under the run's root is refused."""
        if not self.target.owns(job_id):
            raise not_ours(method, job_id, self.root)
        return f"{job_id}/{task_index}"

    # -- logs ---------------------------------------------------------------------

    def log_service(self) -> model.LogService:
        """Where this controller's logs are read (workers.controller.log_server), asked once."""
        if self._log_service is None:
            self._log_service = resolve_log_service(self.client, self._timeout())
        return self._log_service

    def fetch_logs(self, body: JsonObject) -> Field:
        logs = self.client.at(self.log_service().url)  # same credentials, same connection pool
        reply = logs.call(FETCH_LOGS, body, self._timeout(), self.target.max_log_page_bytes)
        return Field.of(FETCH_LOGS, reply)

    def task_log_tail(self, job_id: str, task_index: int, lines: int) -> list[str]:
        return [line.data for line in self.task_logs(job_id, task_index, lines)]

    def task_logs(
        self, job_id: str, task_index: int, lines: int, min_level: model.LogLevel | None = None
    ) -> list[model.LogLine]:
        """The task's last lines. Workers push output in batches, so a task that has just ended
        may not be in the log service yet: an empty answer is asked again, within LOG_FLUSH_S."""
        body: JsonObject = {
            "source": f"{job_id}/{task_index}:",
            "matchScope": "MATCH_SCOPE_PREFIX",
            "tail": True,
            "maxLines": lines,
        }
        if min_level is not None:
            body["minLevel"] = min_level.name  # finelog's names: "WARNING"
        flushed = self.deadline.within(LOG_FLUSH_S)
        while True:
            entries = sorted(self.fetch_logs(body).at("entries").as_list(), key=lambda e: e.at("seq").as_int())
            if entries or flushed.expired():
                return [model.LogLine(e.at("data").as_str(), _level(e.at("level").as_str())) for e in entries]
            time.sleep(flushed.cap(LOG_FLUSH_RETRY_S))

    def list_endpoints(self, prefix: str = "") -> list[model.Endpoint]:
        reply = self._call(f"{ENDPOINTS}/ListEndpoints", {"prefix": self.root + prefix})
        found = [
            model.Endpoint(e.at("name").required().as_str(), e.at("address").as_str(), e.at("taskId").as_str())
            for e in reply.at("endpoints").as_list()
        ]
        return [e for e in found if e.name.startswith(self.root + prefix)]  # ours, whatever the filter did
