"""The controller interface over the embedded local cluster's gRPC API (iris_smoke_api).

Imported only in a child, after the fork: it loads grpc. One channel per child, closed
however the `open` block ends. The address is the cluster's `unix:/…/controller.sock`
(grpc's own target syntax); a `host:port` works too, for a controller reached otherwise.
Job names are flat, `<root>-<test>`, and the run's jobs are listed by that name prefix.
"""

import contextlib
import dataclasses
import select
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common import log_levels
from common.controller_target import JOB_RUN_ID_ENV, ControllerTarget
from common.deadline import Deadline
from iris_smoke_api.v1 import controller_pb2 as pb
from iris_smoke_api.v1 import controller_pb2_grpc
from workers.controller import model
from workers.controller.calls import RPC_TIMEOUT_S, not_ours, rpc_timeout

_Model = TypeVar("_Model", model.Job, model.Task)
HEALTH_RETRY_S = 0.2
# What the embedded controller cannot tell the fleet check controller_vitals, and why.
NO_DATABASE = "the embedded controller keeps its state in memory: it has no database to query"
NO_BANDS = "the embedded scheduler has no priority bands or budgets"
NO_PROCESS_STATUS = "the embedded controller's API has no process status (its process is the run's own child)"
NO_CONTAINER = "the embedded cluster runs tasks as plain processes: there is no container to exec in"
NO_PROFILER = "the embedded cluster runs tasks as plain processes and has no profiler"
CHILD_TIMEOUT_S = 60.0
# Short enough that a stop request, checked between attempts, is seen well within the grace.
HEALTH_CHECK_S = 0.25
_OPS = {
    "eq": pb.CONSTRAINT_OP_EQ,
    "ne": pb.CONSTRAINT_OP_NE,
    "exists": pb.CONSTRAINT_OP_EXISTS,
    "not_exists": pb.CONSTRAINT_OP_NOT_EXISTS,
}


def _error(exc: grpc.RpcError, method: str) -> model.ControllerError:
    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else ""
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    if name == "UNIMPLEMENTED":
        return model.ControllerError(model.ErrorCode.API_MISMATCH, method, str(details or ""))
    return model.ControllerError(model.ErrorCode.named(name), method, str(details or ""))


def _rfc3339(ts: Timestamp) -> str | None:
    """An RFC 3339 UTC string, or None for an unset timestamp (proto3 cannot tell 0 apart)."""
    return None if ts.seconds == 0 and ts.nanos == 0 else ts.ToJsonString()


def _copied(cls: type[_Model], message: Any, **converted: Any) -> _Model:
    """`cls` from a proto message whose fields have the same names: each field as the message has it,
    but those given in `converted` (an enum, a timestamp, a map)."""
    same = {f.name: getattr(message, f.name) for f in dataclasses.fields(cls) if f.name not in converted}
    return cls(**same, **converted)


def _enum(enum_type: pb.JobState | type, value: int, prefix: str) -> str:
    try:
        name: str = enum_type.Name(value)  # type: ignore[union-attr]
    except ValueError:
        return "unspecified"
    return name.removeprefix(prefix).lower()


def _duration(seconds: float) -> Duration:
    return Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))


class EmbeddedController:
    inherited_constraint_keys: frozenset[str] | None = None  # the controller inherits them all

    def __init__(
        self, channel: grpc.Channel, target: ControllerTarget, deadline: Deadline, call_limit_s: float = RPC_TIMEOUT_S
    ) -> None:
        self.channel = channel
        self.call_limit_s = call_limit_s
        self.stub = controller_pb2_grpc.ControllerServiceStub(channel)
        self.deadline = deadline
        self.target = target
        self.prefix = target.job_prefix

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, target: ControllerTarget, deadline: Deadline, call_limit_s: float = RPC_TIMEOUT_S
    ) -> Iterator["EmbeddedController"]:
        with grpc.insecure_channel(target.address) as channel:
            yield cls(channel, target, deadline, call_limit_s)

    def _timeout(self) -> float:
        return rpc_timeout(self.deadline, self.call_limit_s)

    def _call(self, method: str, rpc: Callable[..., Any], request: object) -> Any:
        """One unary call within the call limit and the deadline; a failure is a ControllerError.
        (grpc is untyped: the reply is Any, as it was from the stub itself.)"""
        try:
            return rpc(request, timeout=self._timeout())
        except grpc.RpcError as exc:
            raise _error(exc, method) from None

    def serving(self, timeout_s: float, stop_fd: int | None = None) -> bool:
        """Poll the standard health service until SERVING, a stop, or the time is up.

        wait_for_ready makes each check wait for the connection instead of failing fast
        while the server is still binding; the check's own timeout bounds that wait.
        """
        end = self.deadline.within(timeout_s)
        stub = health_pb2_grpc.HealthStub(self.channel)
        request = health_pb2.HealthCheckRequest(service="")
        while not end.expired():
            try:
                reply = stub.Check(request, timeout=max(0.01, end.cap(HEALTH_CHECK_S)), wait_for_ready=True)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass  # not up yet: try again until `end`
            ready, _, _ = select.select([stop_fd] if stop_fd is not None else [], [], [], end.cap(HEALTH_RETRY_S))
            if ready:
                return False
        return False

    def list_workers(self) -> list[model.Worker]:
        reply = self._call("ListWorkers", self.stub.ListWorkers, pb.ListWorkersRequest())
        return [
            model.Worker(
                worker_id=w.worker_id,
                healthy=w.healthy,
                address=w.address,
                attributes=dict(w.attributes) | ({"tpu-name": w.slice_id} if w.slice_id else {}),
                vm_name=w.vm_name,
                cpu_millicores=w.cpu_millicores,
                running=w.running_tasks,
            )
            for w in reply.workers
        ]

    def launch(self, request: model.JobRequest) -> str:
        reply = self._call("LaunchJob", self.stub.LaunchJob, self.launch_request(request))
        return str(reply.job_id)

    def launch_request(self, request: model.JobRequest) -> pb.LaunchJobRequest:
        if request.device == "tpu":
            device = pb.DeviceConfig(tpu=pb.TpuDevice(variant=request.variant, count=request.count))
        elif request.device == "gpu":
            device = pb.DeviceConfig(gpu=pb.GpuDevice(variant=request.variant, count=request.count))
        else:
            device = pb.DeviceConfig(cpu=pb.CpuDevice())
        backstop = _duration(request.timeout_s) if request.timeout_s else None
        return pb.LaunchJobRequest(
            name=self.prefix + request.name,
            entrypoint=list(task_argv(request)),
            resources=pb.ResourceSpec(
                device=device,
                cpu_millicores=model.TASK_CPU_MILLICORES if request.cpu_millicores is None else request.cpu_millicores,
                memory_bytes=request.memory_bytes or 0,
            ),
            replicas=request.replicas,
            constraints=[pb.Constraint(key=c.key, op=_OPS[c.op], value=c.value) for c in request.constraints],
            coscheduling=pb.CoschedulingConfig(group_by=request.group_by) if request.group_by else None,
            scheduling_timeout=backstop,
            timeout=backstop,
            env={JOB_RUN_ID_ENV: self.target.run_id} if self.target.run_id else None,
            ports=list(request.ports),
            workdir_files=dict(request.workdir_files),
        )

    def list_jobs(self) -> list[model.Job]:
        # The server filters by name prefix; `owns` is checked again on the job id we act on.
        return [j for j in self._list_jobs(self.prefix) if self.target.owns(j.job_id)]

    def list_all_jobs(self) -> list[model.Job]:
        """Every job on the cluster, whoever submitted it (for `foreign_job`: only on a cluster the run owns)."""
        return self._list_jobs("")

    def _list_jobs(self, name_prefix: str) -> list[model.Job]:
        reply = self._call("ListJobs", self.stub.ListJobs, pb.ListJobsRequest(name_prefix=name_prefix))
        return [
            _copied(
                model.Job,
                j,
                state=model.job_state(_enum(pb.JobState, j.state, "JOB_STATE_")),
                task_state_counts=dict(j.task_state_counts),
                submitted_at=_rfc3339(j.submitted_at),
                finished_at=_rfc3339(j.finished_at),
            )
            for j in reply.jobs
        ]

    def list_tasks(self, job_id: str) -> list[model.Task]:
        reply = self._call("ListTasks", self.stub.ListTasks, pb.ListTasksRequest(job_id=job_id))
        return [
            _copied(model.Task, t, state=model.task_state(_enum(pb.TaskState, t.state, "TASK_STATE_")))
            for t in reply.tasks
        ]

    def terminate(self, job_ids: Sequence[str], timeout_s: float) -> dict[str, model.ControllerError | None]:
        """TerminateJob all at once (one round trip in total, not one per job), bounded by `timeout_s`."""
        done: dict[str, model.ControllerError | None] = {
            j: not_ours("TerminateJob", j, self.prefix) for j in job_ids if not self.target.owns(j)
        }
        calls = [
            (j, self.stub.TerminateJob.future(pb.TerminateJobRequest(job_id=j), timeout=timeout_s))
            for j in job_ids
            if j not in done
        ]
        for job_id, call in calls:
            try:
                call.result()
                done[job_id] = None
            except grpc.RpcError as exc:
                done[job_id] = _error(exc, "TerminateJob")
        return done

    def autoscaler(self) -> model.AutoscalerStatus:
        reply = self._call("GetAutoscalerStatus", self.stub.GetAutoscalerStatus, pb.GetAutoscalerStatusRequest())
        return model.AutoscalerStatus(
            groups=tuple(_group(g) for g in reply.groups),
            current_demand=reply.current_demand,
            actions=tuple(
                model.Action(_rfc3339(a.timestamp), a.action_type, a.scale_group, a.slice_id, a.reason, a.status)
                for a in reply.recent_actions
            ),
            unmet=tuple(model.Unmet(u.reason, u.job_id, u.tasks, u.scale_group) for u in reply.unmet_demand),
        )

    def task_log_tail(self, job_id: str, task_index: int, lines: int) -> list[str]:
        return [line.data for line in self.task_logs(job_id, task_index, lines)]

    def task_logs(
        self, job_id: str, task_index: int, lines: int, min_level: model.LogLevel | None = None
    ) -> list[model.LogLine]:
        level = pb.LogLevel.ValueType(log_levels.number(min_level) if min_level is not None else 0)
        request = pb.GetTaskLogsRequest(job_id=job_id, task_index=task_index, limit=lines, min_level=level)
        reply = self._call("GetTaskLogs", self.stub.GetTaskLogs, request)
        return [model.LogLine(line.data, log_levels.level_of_number(line.level)) for line in reply.lines]

    def list_endpoints(self, prefix: str = "") -> list[model.Endpoint]:
        request = pb.ListEndpointsRequest(prefix=self.prefix + prefix)
        reply = self._call("ListEndpoints", self.stub.ListEndpoints, request)
        return [
            model.Endpoint(e.name, e.address, e.task_id) for e in reply.endpoints if e.name.startswith(request.prefix)
        ]

    def log_service(self) -> None:
        return None  # the embedded cluster's logs are its VMs' container files, followed by the streams

    def database_ping(self) -> float:
        raise model.ControllerError(model.ErrorCode.UNIMPLEMENTED, "ExecuteRawQuery", NO_DATABASE)

    def process_status(self) -> model.ProcessStatus:
        raise model.ControllerError(model.ErrorCode.UNIMPLEMENTED, "GetProcessStatus", NO_PROCESS_STATUS)

    def user_band(self) -> model.UserBand:
        raise model.ControllerError(model.ErrorCode.UNIMPLEMENTED, "GetSchedulerState", NO_BANDS)

    def exec_in_container(
        self, job_id: str, task_index: int, argv: Sequence[str], timeout_s: float
    ) -> model.ExecResult:
        raise model.ControllerError(model.ErrorCode.UNIMPLEMENTED, "ExecInContainer", NO_CONTAINER)

    def profile_task(self, job_id: str, task_index: int, duration_s: float) -> model.Profile:
        raise model.ControllerError(model.ErrorCode.UNIMPLEMENTED, "ProfileTask", NO_PROFILER)


def submits_child(child: model.JobRequest) -> tuple[str, ...]:
    """A task that submits `child` through the tiny client the VM host gives it (local_cluster.child_job)."""
    words = ['"$IRIS_SMOKE_PYTHON"', "-m", "local_cluster.child_job", "--name", shlex.quote(child.name)]
    words += ["--timeout", f"{child.timeout_s or CHILD_TIMEOUT_S:g}"]
    words += [f"--constraint={shlex.quote(f'{c.key}={c.value}')}" for c in child.constraints]
    return ("sh", "-c", " ".join([*words, "--", *map(shlex.quote, child.argv)]))


def registers_endpoint(request: model.JobRequest) -> tuple[str, ...]:
    """A task that registers `request.endpoint` through the VM host's client (local_cluster.endpoint_task)."""
    words = ['"$IRIS_SMOKE_PYTHON"', "-m", "local_cluster.endpoint_task", "--name", shlex.quote(request.endpoint)]
    words += ["--address", shlex.quote(model.ENDPOINT_ADDRESS), "--hold", f"{request.endpoint_hold_s:g}"]
    return ("sh", "-c", " ".join(words))


def task_argv(request: model.JobRequest) -> tuple[str, ...]:
    """What the job's tasks run: the request's argv, or the task client's work it asks for."""
    if request.child:
        return submits_child(request.child)
    return registers_endpoint(request) if request.endpoint else request.argv


def _group(g: pb.ScaleGroupStatus) -> model.GroupStatus:
    config = g.config
    return model.GroupStatus(
        name=g.name,
        device=_enum(pb.AcceleratorType, config.accelerator_type, "ACCELERATOR_TYPE_"),
        variant=config.accelerator_variant,
        hosts_per_slice=config.num_vms or 1,
        chips_per_host=config.chips_per_vm,
        attributes=dict(config.attributes),
        declares=dict(config.attributes) | {"scale-group": g.name},
        backoff=g.HasField("backoff_until") and g.backoff_until.ToSeconds() > time.time(),
        consecutive_failures=g.consecutive_failures,
        current_demand=g.current_demand,
        min_slices=config.min_slices,
        max_slices=config.max_slices,
        slices=tuple(
            model.SliceStatus(
                slice_id=s.slice_id,
                vms=tuple(
                    model.VmStatus(vm.vm_id, _enum(pb.VmState, vm.state, "VM_STATE_"), vm.worker_id) for vm in s.vms
                ),
            )
            for s in g.slices
        ),
    )
