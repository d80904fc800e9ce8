"""Between protobuf messages and the controller's records; no logic beyond packing."""

from collections.abc import Callable

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from common import log_levels
from common.log_levels import LogLevel
from common.states import number, task_state_of
from iris_smoke_api.v1 import controller_pb2 as pb
from iris_smoke_api.v1.states import ConstraintOp
from local_cluster.autoscaler import Action, GroupState, Slice, UnmetDemand
from local_cluster.controller import Assignment, HeartbeatReply, TaskKey, TaskReport
from local_cluster.endpoints import Endpoint
from local_cluster.jobs import task_counts
from local_cluster.model import Constraint, Device, Job, JobSpec, Task, Worker
from local_cluster.states import AcceleratorType

Wall = Callable[[float], float]  # controller monotonic time -> Unix time


def _ts(wall_s: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(wall_s * 1e9))
    return ts


def _opt_ts(t: float | None, wall: Wall) -> Timestamp | None:
    return None if t is None else _ts(wall(t))


def _seconds(d: Duration, present: bool) -> float | None:
    return d.ToNanoseconds() / 1e9 if present else None


def device_from_pb(d: pb.DeviceConfig) -> Device:
    kind = d.WhichOneof("device")
    if kind == "gpu":
        return Device(AcceleratorType.GPU, d.gpu.variant, d.gpu.count)
    if kind == "tpu":
        return Device(AcceleratorType.TPU, d.tpu.variant, d.tpu.count)
    return Device()


def spec_from_pb(r: pb.LaunchJobRequest) -> JobSpec:
    return JobSpec(
        name=r.name or "job",
        argv=tuple(r.entrypoint),
        device=device_from_pb(r.resources.device),
        replicas=r.replicas or 1,
        group_by=r.coscheduling.group_by,
        constraints=tuple(Constraint(c.key, ConstraintOp(c.op or ConstraintOp.EQ), c.value) for c in r.constraints),
        scheduling_timeout_s=_seconds(r.scheduling_timeout, r.HasField("scheduling_timeout")),
        timeout_s=_seconds(r.timeout, r.HasField("timeout")),
        env=tuple(sorted(r.env.items())),
        parent_job_id=r.parent_job_id,
        ports=tuple(r.ports),
        cpu_millicores=r.resources.cpu_millicores,
        workdir_files=tuple(sorted(r.workdir_files.items())),
    )


def job_to_pb(job: Job, wall: Wall) -> pb.JobStatus:
    return pb.JobStatus(
        job_id=job.job_id,
        name=job.spec.name,
        state=pb.JobState.ValueType(number(job.state)),
        error=job.error,
        exit_code=job.exit_code,
        task_state_counts=task_counts(job),
        pending_reason=job.pending_reason,
        replicas=job.spec.replicas,
        submitted_at=_ts(wall(job.submitted_at)),
        started_at=_opt_ts(job.started_at, wall),
        finished_at=_opt_ts(job.finished_at, wall),
    )


def task_to_pb(task: Task, wall: Wall) -> pb.TaskStatus:
    return pb.TaskStatus(
        task_id=task.task_id,
        job_id=task.job_id,
        task_index=task.index,
        state=pb.TaskState.ValueType(number(task.state)),
        worker_id=task.worker_id,
        pending_reason=task.pending_reason,
        can_be_scheduled=task.can_be_scheduled,
        exit_code=task.exit_code,
        error=task.error,
        attempts=task.attempts,
        started_at=_opt_ts(task.started_at, wall),
        finished_at=_opt_ts(task.finished_at, wall),
    )


def log_line_to_pb(ns: int, text: str, level: LogLevel = LogLevel.UNKNOWN) -> pb.LogLine:
    line = pb.LogLine(data=text, level=pb.LogLevel.ValueType(log_levels.number(level)))
    line.timestamp.FromNanoseconds(ns)
    return line


def worker_to_pb(w: Worker, wall: Wall) -> pb.WorkerInfo:
    return pb.WorkerInfo(
        worker_id=w.worker_id,
        healthy=w.healthy,
        address=f"local:{w.pid}",
        vm_name=w.worker_id,
        slice_id=w.slice_id,
        scale_group=w.scale_group,
        attributes=w.attributes,
        running_tasks=len(w.active_tasks),
        cpu_millicores=w.cpu_millicores,
        last_heartbeat=_ts(wall(w.last_heartbeat)),
    )


def _slice_to_pb(s: Slice, wall: Wall, worker_ids: set[str]) -> pb.SliceInfo:
    vms = [
        pb.VmInfo(
            vm_id=vm.name,
            state=pb.VmState.ValueType(vm.state.value),
            address=f"local:{vm.pid}" if vm.pid else "",
            worker_id=vm.name if vm.name in worker_ids else "",
        )
        for vm in s.vms
    ]
    return pb.SliceInfo(slice_id=s.slice_id, vms=vms, created_at=_ts(wall(s.created_at)))


def group_to_pb(g: GroupState, wall: Wall, worker_ids: set[str], attributes: dict[str, str]) -> pb.ScaleGroupStatus:
    cfg = g.config
    counts: dict[str, int] = {}
    for s in g.slices.values():
        counts[s.state.name.lower()] = counts.get(s.state.name.lower(), 0) + 1
    return pb.ScaleGroupStatus(
        name=cfg.name,
        config=pb.ScaleGroupConfig(
            min_slices=cfg.min_slices,
            max_slices=cfg.max_slices,
            accelerator_type=pb.AcceleratorType.Value(f"ACCELERATOR_TYPE_{cfg.accelerator_type.name}"),
            accelerator_variant=cfg.accelerator_variant,
            num_vms=cfg.hosts_per_slice,
            chips_per_vm=cfg.chips_per_host,
            attributes=attributes,
        ),
        current_demand=g.current_demand,
        peak_demand=g.peak_demand,
        backoff_until=_ts(wall(g.backoff_until)) if g.consecutive_failures else None,
        consecutive_failures=g.consecutive_failures,
        slices=[_slice_to_pb(s, wall, worker_ids) for s in g.slices.values()],
        slice_state_counts=counts,
    )


def action_to_pb(a: Action, wall: Wall) -> pb.AutoscalerAction:
    return pb.AutoscalerAction(
        timestamp=_ts(wall(a.timestamp)), action_type=a.action_type.value, scale_group=a.scale_group,
        slice_id=a.slice_id, reason=a.reason, status=a.status,
    )  # fmt: skip


def unmet_to_pb(u: UnmetDemand) -> pb.UnmetDemand:
    return pb.UnmetDemand(job_id=u.job_id, tasks=u.tasks, scale_group=u.scale_group, reason=u.reason)


def key_from_pb(ref: pb.TaskRef) -> TaskKey:
    return (ref.job_id, ref.task_index, ref.attempt)


def _ref(key: TaskKey) -> pb.TaskRef:
    return pb.TaskRef(job_id=key[0], task_index=key[1], attempt=key[2])


def report_from_pb(u: pb.TaskUpdate) -> TaskReport:
    return TaskReport(key_from_pb(u.task), task_state_of(u.state), u.exit_code, u.error)


def logs_from_pb(chunks: "list[pb.TaskLogChunk]") -> list[tuple[TaskKey, list[tuple[int, str]]]]:
    return [(key_from_pb(c.task), [(ln.timestamp.ToNanoseconds(), ln.data) for ln in c.lines]) for c in chunks]


def _assignment_to_pb(a: Assignment) -> pb.TaskAssignment:
    return pb.TaskAssignment(
        task=_ref(a.key),
        num_tasks=a.num_tasks,
        argv=list(a.argv),
        env=a.env,
        ports=a.ports,
        workdir_files=dict(a.workdir_files),
    )


def heartbeat_reply_to_pb(r: HeartbeatReply) -> pb.HeartbeatResponse:
    return pb.HeartbeatResponse(
        run=[_assignment_to_pb(a) for a in r.run], kill=[_ref(k) for k in r.kill], shutdown=r.shutdown
    )


def endpoint_to_pb(e: Endpoint) -> pb.Endpoint:
    return pb.Endpoint(endpoint_id=e.endpoint_id, name=e.name, address=e.address, task_id=e.task_id)
