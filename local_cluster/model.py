"""The controller's records: what a job asks for, and jobs, tasks and workers as they live.

Specs are frozen; records are mutable dataclasses whose lifecycle is an explicit state
enum. Times are on the controller's monotonic clock; only the API converts them to wall
time.
"""

import collections
from dataclasses import dataclass, field

from common.states import JobState, TaskState
from iris_smoke_api.v1.states import ConstraintOp
from local_cluster.states import AcceleratorType

TASK_LOG_LINES_KEPT = 1000


@dataclass(frozen=True)
class Device:
    kind: AcceleratorType = AcceleratorType.CPU
    variant: str = ""  # empty = any variant
    count: int = 0  # chips/devices per task; 0 = the whole host (cpu: one task slot)

    def describe(self) -> str:
        if self.kind == AcceleratorType.CPU:
            return "cpu"
        return " ".join(p for p in (self.kind.value, self.variant, f"x{self.count}" if self.count else "") if p)


@dataclass(frozen=True)
class Constraint:
    key: str
    op: ConstraintOp
    value: str = ""

    def matches(self, attributes: dict[str, str]) -> bool:
        present = self.key in attributes
        match self.op:
            case ConstraintOp.EQ | ConstraintOp.UNSPECIFIED:  # the proto's zero value means EQ
                return present and attributes[self.key] == self.value
            case ConstraintOp.NE:
                return not present or attributes[self.key] != self.value
            case ConstraintOp.EXISTS:
                return present
            case ConstraintOp.NOT_EXISTS:
                return not present

    def describe(self) -> str:
        if self.op == ConstraintOp.NOT_EXISTS:
            return f"{self.key} absent"
        if self.op == ConstraintOp.EXISTS:
            return f"{self.key} exists"
        return f"{self.key}{'!=' if self.op == ConstraintOp.NE else '='}{self.value}"


@dataclass(frozen=True)
class JobSpec:
    name: str
    argv: tuple[str, ...]
    device: Device = Device()
    replicas: int = 1
    group_by: str = ""  # coscheduling attribute; empty = tasks placed independently
    constraints: tuple[Constraint, ...] = ()
    scheduling_timeout_s: float | None = None
    timeout_s: float | None = None
    env: tuple[tuple[str, str], ...] = ()
    parent_job_id: str = ""  # set: a child job, named `<parent name>/<name>`
    ports: tuple[str, ...] = ()  # named ports: each task gets a free one per name (IRIS_PORT_<NAME>)
    cpu_millicores: int = 0  # per task; 0 = none (a task still takes a slot)
    workdir_files: tuple[tuple[str, bytes], ...] = ()  # written into each task's working directory


@dataclass
class Task:
    job_id: str
    index: int
    state: TaskState = TaskState.PENDING
    worker_id: str = ""
    pending_reason: str = ""
    can_be_scheduled: bool = False
    exit_code: int = 0
    error: str = ""
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    log: collections.deque[tuple[int, str]] = field(
        default_factory=lambda: collections.deque(maxlen=TASK_LOG_LINES_KEPT)
    )

    @property
    def task_id(self) -> str:
        return f"{self.job_id}/{self.index}"


@dataclass
class Job:
    job_id: str
    spec: JobSpec
    submitted_at: float
    tasks: list[Task]
    state: JobState = JobState.PENDING
    error: str = ""
    exit_code: int = 0
    pending_reason: str = ""
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def coscheduled(self) -> bool:
        return bool(self.spec.group_by)


@dataclass
class Worker:
    worker_id: str  # the VM name
    slice_id: str
    scale_group: str
    host_index: int
    device: Device  # kind, variant and count = the host's capacity
    attributes: dict[str, str]
    pid: int
    last_heartbeat: float
    schedulable: bool = False  # every host of the slice has registered
    healthy: bool = True
    active_tasks: dict[tuple[str, int], int] = field(default_factory=dict)  # (job, index) -> units
    cpu_millicores: int = 0  # the host's CPU capacity
    held_cpu: dict[tuple[str, int], int] = field(default_factory=dict)  # (job, index) -> millicores
    leaked_cpu: int = 0  # held by killed tasks under the fault hold_killed_resources
    holds_killed: bool = False  # that fault is on

    @property
    def free_units(self) -> int:
        return self.device.count - sum(self.active_tasks.values())

    @property
    def free_cpu(self) -> int:
        return self.cpu_millicores - sum(self.held_cpu.values()) - self.leaked_cpu

    def units_for(self, device: Device) -> int:
        """Capacity units a task with `device` would take on this worker."""
        if self.device.kind == AcceleratorType.CPU:
            return 1
        return device.count or self.device.count
