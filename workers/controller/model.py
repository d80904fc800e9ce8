"""What a controller tells a smoke run, in plain typed values, whichever wire it came over.

The adapters (`grpc_api`, `connect_api`) convert their replies into these; the children
(discovery, monitors, tests, diagnostics) see nothing else. States are lower-case names,
the form that goes into JSON and events. A state a newer controller invents becomes
`unspecified`: shown, never matched.
"""

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from common.controller_target import PriorityBand
from common.log_levels import LogLevel as LogLevel
from common.states import FAILED_TASK_STATES as FAILED_TASK_STATES
from common.states import JobState as JobState
from common.states import TaskState as TaskState
from common.states import job_finished as job_finished
from common.states import task_finished as task_finished

S = TypeVar("S", bound=enum.StrEnum)


def by_name(states: type[S], name: str, prefix: str) -> S:
    """`JOB_STATE_RUNNING` or `running` -> the member; a name we do not know -> `unspecified`."""
    try:
        return states(name.removeprefix(prefix).lower())
    except ValueError:
        return states("unspecified")


def job_state(name: str) -> JobState:
    return by_name(JobState, name, "JOB_STATE_")


def task_state(name: str) -> TaskState:
    return by_name(TaskState, name, "TASK_STATE_")


class ErrorCode(enum.StrEnum):
    """Why a call failed: the gRPC status names and Connect codes, lower-case, plus our own."""

    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    INVALID_ARGUMENT = "invalid_argument"
    FAILED_PRECONDITION = "failed_precondition"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission_denied"
    UNIMPLEMENTED = "unimplemented"
    INTERNAL = "internal"
    UNKNOWN = "unknown"
    # The controller answered, but not in a shape we understand (a method it does not
    # have, a field missing from its reply): a newer or older API, not a flaky network.
    API_MISMATCH = "iris_api_mismatch"
    # The controller began an answer and did not finish it within the call's time (a reply
    # dripped or streamed without end), or sent one longer than our cap: broken or hostile,
    # and asking again costs the same again (workers.controller.bounded).
    CONTROLLER_TIMEOUT = "controller_timeout"
    REPLY_TOO_LARGE = "reply_too_large"

    @classmethod
    def named(cls, name: str) -> "ErrorCode":
        try:
            return cls(name.lower())
        except ValueError:
            return cls.UNKNOWN


class ControllerError(Exception):
    """A call that did not give an answer; `code` says why, `method` which call."""

    def __init__(self, code: ErrorCode, method: str, details: str = "") -> None:
        super().__init__(f"{method}: {code} {details}".strip())
        self.code = code
        self.method = method
        self.details = details[:300]


class ApiMismatch(ControllerError):
    """The controller's API is not the one we speak: names the method and the field."""

    def __init__(self, method: str, field_name: str, details: str = "") -> None:
        super().__init__(ErrorCode.API_MISMATCH, method, details or f"field {field_name!r} missing from the reply")
        self.field = field_name


@dataclass(frozen=True)
class Worker:
    worker_id: str
    healthy: bool
    address: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    vm_name: str = ""  # the VM it runs on, when the controller says (the embedded cluster does)
    device_count: int = 0  # TPU chips or GPUs on this host, where the controller says (Iris does); 0 = not said
    cpu_millicores: int = 0  # the host's schedulable CPU (thousandths of a core); 0 = not said
    running: int = 0  # jobs (Iris) or tasks (embedded) running on it now

    @property
    def slice_name(self) -> str:
        return self.attributes.get("tpu-name", "")

    @property
    def scale_group(self) -> str:
        return self.attributes.get("scale-group", "")

    @property
    def slice_host(self) -> int | None:
        """This host's index in its slice (`tpu-worker-id`), or None when not a slice host."""
        value = self.attributes.get("tpu-worker-id", "")
        return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class Job:
    job_id: str
    name: str
    state: JobState
    error: str = ""
    exit_code: int = 0
    pending_reason: str = ""
    task_state_counts: Mapping[str, int] = field(default_factory=dict)
    submitted_at: str | None = None  # RFC 3339, UTC
    finished_at: str | None = None

    @property
    def error_suffix(self) -> str:
        """`: <error>` to end a sentence about the job with, or nothing when it gave no error."""
        return f": {self.error}" if self.error else ""


@dataclass(frozen=True)
class Task:
    task_id: str
    task_index: int
    state: TaskState
    worker_id: str = ""
    pending_reason: str = ""
    can_be_scheduled: bool = True
    exit_code: int = 0
    error: str = ""
    attempts: int = 0


@dataclass(frozen=True)
class Constraint:
    key: str
    op: str  # eq | ne | exists | not_exists
    value: str = ""


# The CPU a task asks when its request names none: the smallest request Iris accepts, a tenth of a core.
TASK_CPU_MILLICORES = 100


@dataclass(frozen=True)
class JobRequest:
    """One job to launch; `name` is short ("simple", "concurrent-1") and lives under the run's root."""

    name: str
    argv: tuple[str, ...]
    device: str = "cpu"  # cpu | gpu | tpu
    variant: str = ""
    count: int = 0
    replicas: int = 1
    group_by: str = ""
    constraints: tuple[Constraint, ...] = ()
    # A backstop on the controller's side for a tests child that died without cleaning up.
    timeout_s: float = 0.0
    # Set: the job's task submits this job as its child, through the controller it is given,
    # waits for it and exits 0 only if the child succeeded (the adapter writes that task).
    child: "JobRequest | None" = None
    # Named ports each task is given (Iris: `ports`, in the task's environment as IRIS_PORT_<NAME>).
    ports: tuple[str, ...] = ()
    # Set: the task registers an endpoint of this name under its job (`<job name>/<endpoint>`) with
    # the controller it is given, at ENDPOINT_ADDRESS, then stays running until terminated or
    # `endpoint_hold_s` (the adapter writes that task).
    endpoint: str = ""
    endpoint_hold_s: float = 0.0
    cpu_millicores: int | None = None  # per task; None = the adapter's default (TASK_CPU_MILLICORES)
    memory_bytes: int | None = None  # per task; None = the adapter's default
    # Files the task finds in its working directory (name, content); Iris offloads the large
    # ones (over 10 KB in 0.2.227) through its blob store.
    workdir_files: tuple[tuple[str, bytes], ...] = ()
    # Iris's band for this job; None = the run's (`[suite] priority_band`). The embedded cluster has none.
    priority_band: PriorityBand | None = None


# The address an endpoint_registration task registers (nothing listens there: the registry is tested).
ENDPOINT_ADDRESS = "127.0.0.1:9"


@dataclass(frozen=True)
class LogLine:
    """One line a task wrote, with the level the controller's log service gave it."""

    data: str
    level: LogLevel = LogLevel.UNKNOWN


@dataclass(frozen=True)
class Endpoint:
    """A service a task registered with the controller (Iris's endpoint registry)."""

    name: str
    address: str
    task_id: str = ""


@dataclass(frozen=True)
class VmStatus:
    vm_id: str
    state: str
    worker_id: str = ""
    healthy: bool | None = None


@dataclass(frozen=True)
class SliceStatus:
    slice_id: str
    state: str = ""
    vms: tuple[VmStatus, ...] = ()


@dataclass(frozen=True)
class GroupStatus:
    name: str
    device: str  # cpu | gpu | tpu
    variant: str
    hosts_per_slice: int
    current_demand: int = 0
    chips_per_host: int = 0  # 0 = not reported
    # What every worker of the group carries (region, preemptible, ...), where the controller says.
    attributes: Mapping[str, str] = field(default_factory=dict)
    min_slices: int = 0
    max_slices: int = 0
    slices: tuple[SliceStatus, ...] = ()
    # What the group declares each of its workers carries, in the workers' own attribute names
    # (each adapter says what its controller puts on the wire); the fleet check worker_attributes.
    declares: Mapping[str, str] = field(default_factory=dict)
    # Scaling trouble as the controller says it: a backoff (its availability and reason where it
    # gives them) and scale-ups failed in a row; the fleet check autoscaler_health.
    backoff: bool = False
    availability: str = ""
    availability_reason: str = ""
    consecutive_failures: int = 0


# Actions that mean the autoscaler gave up on a scale-up (besides any whose status is "failed").
GAVE_UP_ACTIONS = frozenset({"backoff_triggered", "quota_exceeded"})


@dataclass(frozen=True)
class Action:
    timestamp: str | None
    action_type: str  # scale_up | scale_down | slice_ready | backoff_triggered | ...
    scale_group: str
    slice_id: str = ""
    reason: str = ""
    status: str = ""

    @property
    def failed(self) -> bool:
        """A scale-up that failed or that the autoscaler gave up on."""
        return self.status == "failed" or self.action_type in GAVE_UP_ACTIONS


@dataclass(frozen=True)
class Unmet:
    reason: str
    job_id: str = ""
    tasks: int = 0
    scale_group: str = ""


@dataclass(frozen=True)
class AutoscalerStatus:
    groups: tuple[GroupStatus, ...]
    current_demand: int = 0
    actions: tuple[Action, ...] = ()
    unmet: tuple[Unmet, ...] = ()


@dataclass(frozen=True)
class ProcessStatus:
    """The controller process as it reports itself (Iris's GetProcessStatus)."""

    tree_hash: str
    base_commit: str
    python_version: str
    rss_bytes: int
    threads: int
    fds: int


@dataclass(frozen=True)
class UserBand:
    """The calling user's scheduling band as the controller sees it (Iris's GetSchedulerState budgets)."""

    user: str
    effective_band: str = ""  # lower-case band name; "" = the controller lists no budget for the user
    max_band: str = ""
    budget_limit: int = 0
    budget_spent: int = 0


@dataclass(frozen=True)
class ExecResult:
    """What a command run in a task's container gave (Iris's ExecInContainer)."""

    exit_code: int
    stdout: str
    stderr: str
    error: str = ""  # set: the controller could not run the command at all (its own words)


class ProfileFormat(enum.StrEnum):
    """How a profile's bytes read."""

    # Iris's CpuProfile.RAW: py-spy's collapsed stacks, text, one `frame;frame;... <samples>` per line.
    RAW = "raw"


@dataclass(frozen=True)
class Profile:
    """A CPU profile of a running task (Iris's ProfileTask)."""

    data: bytes
    format: ProfileFormat
    error: str = ""  # set: the profiler ran and failed (the controller's words); `data` is then empty


class LogRoute(enum.StrEnum):
    """How a real Iris's log service is reached (workers.controller.log_server decides)."""

    CONTROLLER_PROXY = "controller_proxy"  # <controller>/proxy/system.log-server/
    REGISTERED = "registered"  # the address registered under /system/log-server
    CONTROLLER = "controller"  # the controller's own port (older Iris)


@dataclass(frozen=True)
class LogService:
    url: str  # the base URL FetchLogs is posted under
    route: LogRoute
