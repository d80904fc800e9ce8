"""Every message a child sends the supervisor: one frozen dataclass each (common/messages.py is
the wire: framing, caps, redaction, and the codec that reads a line back into its class).

A message counts as one lifecycle `Kind` (READY moves a child to running; the last PROGRESS and
STATS of each child are kept) and has its own tag on the wire, so the supervisor reads the
fields of a known type, never a dict, and a body of another shape is a protocol error.
"""

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from common.jsonshape import JsonObject
from common.messages import Kind, Message
from common.outcome import Outcome
from workers.controller.credentials import Credential
from workers.controller.model import Action, ErrorCode, JobState, TaskState
from workers.gcp.inventory import ResourceKind
from workers.gcp.ssh_target import SshTarget
from workers.hosts import Role
from workers.rejected import HostsRejected as HostsRejected  # declared beside the rejections it reports

# A host entry is a handful of validated names (<= 63 characters each) and an address
# (<= 253): under 1 KiB encoded, so this many stay well under MAX_MESSAGE_BYTES.
HOSTS_PER_MESSAGE = 500


class ControllerState(enum.StrEnum):
    """How a child sees the controller; carried by `ControllerAvailability`."""

    REACHABLE = "reachable"
    UNAVAILABLE = "unavailable"


# -- any child ------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready(Message, kind=Kind.READY, tag="ready"):
    """Ready, and nothing to say about it (diagnostics)."""


@dataclass(frozen=True)
class ApiMismatchReport(Message, kind=Kind.PROGRESS, tag="api_mismatch"):
    """The controller speaks an API we do not: retrying will not change it."""

    method: str
    field: str
    details: str


@dataclass(frozen=True)
class Unauthenticated(Message, kind=Kind.PROGRESS, tag="unauthenticated"):
    """A call refused for our credentials (Iris's, or the proxy's in front of it)."""

    code: ErrorCode
    method: str
    credential: Credential
    details: str


@dataclass(frozen=True)
class BrokenReply(Message, kind=Kind.PROGRESS, tag="broken_reply"):
    """A reply we stopped reading: `controller_timeout` or `reply_too_large` (the code)."""

    code: ErrorCode
    method: str
    details: str


@dataclass(frozen=True)
class ControllerAvailability(Message, kind=Kind.PROGRESS, tag="controller_state"):
    """The controller unreachable past the outage bound, or reachable again after it."""

    controller: ControllerState
    unavailable_for_s: float


# -- the cluster child ----------------------------------------------------------------


@dataclass(frozen=True)
class ClusterReady(Message, kind=Kind.READY, tag="cluster_ready"):
    """The controller answers at `address`; where its logs are and which prefix names its VMs."""

    address: str
    mode: str
    cluster_pid: int
    state_dir: str
    prefix: str
    controller_vm: str = ""  # a tunnel's: the VM it reaches (gcp)
    zone: str = ""
    control_dir: str = ""  # gcp: the ssh masters' directory the streams multiplex through


@dataclass(frozen=True)
class ForeignJob:
    job_id: str
    name: str
    state: JobState
    submitted_at: str | None


@dataclass(frozen=True)
class ForeignJobs(Message, kind=Kind.PROGRESS, tag="foreign_jobs"):
    jobs: tuple[ForeignJob, ...]


@dataclass(frozen=True)
class TunnelDrops(Message, kind=Kind.PROGRESS, tag="tunnel_drops"):
    tunnel_drops: int


@dataclass(frozen=True)
class IrisTmpLeft(Message, kind=Kind.PROGRESS, tag="iris_tmp_left"):
    """What a real Iris local cluster left in its TMPDIR after its stop (the first 20)."""

    iris_tmp_left: tuple[str, ...]


# -- discovery ------------------------------------------------------------------------


@dataclass(frozen=True)
class HostEntry:
    """One host to stream from: a VM (or one host of a multi-host TPU VM), with its container."""

    vm: str
    host: int
    role: Role
    address: str
    zone: str
    container: str
    slice: str = ""
    hosts_in_vm: int = 1
    slice_host: int = 0
    service_port: int | None = None
    ssh: SshTarget | None = None  # gcp: ssh as gcloud's dry-run resolved it
    # What the controller said of the worker (ListWorkers), for the fleet table: its id, its
    # health and its scale group (`scale-group`). Not said for the controller, ssh and gcp VM hosts.
    worker_id: str = ""
    healthy: bool | None = None
    group: str = ""


@dataclass(frozen=True)
class HostsPart(Message, kind=Kind.HOSTS, tag="hosts"):
    """`part` of `parts` of one listing (`listing`, counted by the sender)."""

    hosts: tuple[HostEntry, ...]
    listing: int
    part: int = 0
    parts: int = 1


@dataclass(frozen=True)
class DiscoveryReady(Message, kind=Kind.READY, tag="discovery_ready"):
    hosts: int


@dataclass(frozen=True)
class FailedListings(Message, kind=Kind.PROGRESS, tag="failed_listings"):
    """Listings failed in a row (0: listing again), and the last one's error code."""

    failed_listings: int
    code: str = ""


def host_parts(hosts: Sequence[HostEntry], listing: int) -> Iterator[HostsPart]:
    """One listing as consecutive HOSTS messages: `part` of `parts`, in order.

    A listing of any size fits: 10,000 hosts in one message were over MAX_MESSAGE_BYTES, so
    the supervisor dropped every listing and started no stream at all.
    """
    parts = max(1, -(-len(hosts) // HOSTS_PER_MESSAGE))
    for part in range(parts):
        chunk = hosts[part * HOSTS_PER_MESSAGE : (part + 1) * HOSTS_PER_MESSAGE]
        yield HostsPart(tuple(chunk), listing, part, parts)


class HostsAssembler:
    """The supervisor's end: whole listings from HOSTS parts.

    A pipe keeps the parts in order, so a part other than the next expected one means the
    sender restarted mid-listing: the partial listing is dropped and the next `part == 0`
    starts afresh.
    """

    def __init__(self) -> None:
        self._listing: int | None = None
        self._next_part = 0
        self._hosts: list[HostEntry] = []

    def feed(self, part: HostsPart) -> list[HostEntry] | None:
        """Add one part; return the whole listing when this was its last part."""
        if part.part == 0:
            self._listing, self._hosts = part.listing, []
        elif (part.listing, part.part) != (self._listing, self._next_part):
            self._listing, self._next_part, self._hosts = None, 0, []
            return None
        self._hosts += part.hosts
        self._next_part = part.part + 1
        if self._next_part < part.parts:
            return None
        whole, self._listing, self._next_part, self._hosts = self._hosts, None, 0, []
        return whole


# -- streams --------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamReady(Message, kind=Kind.READY, tag="stream_ready"):
    transport_pid: int
    path: str = ""


@dataclass(frozen=True)
class StreamProgress(Message, kind=Kind.PROGRESS, tag="stream_progress"):
    lines: int
    last_line_age_s: float | None = None
    stale: bool = False


@dataclass(frozen=True)
class StreamStats(Message, kind=Kind.STATS, tag="stream_stats"):
    """A stream's counters at its end (results.json's `streams[]` carries them)."""

    lines: int
    bytes: int
    reconnects: int
    gaps: int
    truncated_lines: int
    invalid_utf8_lines: int
    untimestamped_lines: int
    duplicates_skipped: int
    stale: int  # times the stream went stale
    failed_connects: int
    last_error: str
    capped: bool
    file_bytes: int
    last_ts: str | None
    next_seq: int


@dataclass(frozen=True)
class DemoStats(Message, kind=Kind.STATS, tag="demo_stats"):
    lines: int
    transport_exit: int | None


# -- monitors -------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorReady(Message, kind=Kind.READY, tag="monitor_ready"):
    out: str  # the JSONL file it writes


@dataclass(frozen=True)
class AutoscalerProgress(Message, kind=Kind.PROGRESS, tag="autoscaler_progress"):
    current_demand: int
    slices: int
    unmet_demand: int
    actions: int
    scale_ups: int
    lines: int


@dataclass(frozen=True)
class AutoscalerStats(AutoscalerProgress, kind=Kind.STATS, tag="autoscaler_stats"):
    pass


@dataclass(frozen=True)
class SchedulingProgress(Message, kind=Kind.PROGRESS, tag="scheduling_progress"):
    jobs: int
    tasks: dict[str, int]  # by task state
    lines: int


@dataclass(frozen=True)
class SchedulingStats(SchedulingProgress, kind=Kind.STATS, tag="scheduling_stats"):
    pass


# -- the tests child ------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchedJobs:
    test: str
    job_ids: tuple[str, ...]


@dataclass(frozen=True)
class TestsReady(Message, kind=Kind.READY, tag="tests_ready"):
    """Every job launched: the sweep's list if the child never reports one."""

    jobs: tuple[LaunchedJobs, ...]


@dataclass(frozen=True)
class TaskReport:
    task_index: int
    state: TaskState
    worker_id: str
    exit_code: int


@dataclass(frozen=True)
class JobReport:
    job_id: str
    name: str
    state: JobState
    error: str
    exit_code: int
    tasks: tuple[TaskReport, ...]


@dataclass(frozen=True)
class LogTail:
    job_id: str
    task: int
    lines: tuple[str, ...]


@dataclass(frozen=True)
class WorkerFinding:
    """A fleet check's problem with one worker; `worker_id` empty: a slice's host no worker is listed for."""

    worker_id: str
    problem: str
    slice: str = ""
    slice_host: int | None = None


@dataclass(frozen=True)
class TestResult(Message, kind=Kind.RESULT, tag="test_result"):
    test: str
    outcome: Outcome
    duration_s: float
    error: str
    jobs: tuple[JobReport, ...] = ()
    log_tail: tuple[LogTail, ...] = ()
    # A fleet check's measurements (workers/fleet): `select_1_s`, `tree_hash`, `slices`, ...
    details: JsonObject = field(default_factory=dict)
    # A fleet check's problems per worker (slices_complete, worker_attributes): the fleet table's column.
    workers: tuple[WorkerFinding, ...] = ()


@dataclass(frozen=True)
class JobsConfirmed(Message, kind=Kind.PROGRESS, tag="jobs_confirmed"):
    """The sweep of the run's job root: jobs terminated, jobs seen to end, and those not seen to."""

    terminated: int
    confirmed: int
    unconfirmed: tuple[str, ...]


# -- diagnostics and cleanup ----------------------------------------------------------


@dataclass(frozen=True)
class DiagnosticsResult(Message, kind=Kind.RESULT, tag="diagnostics"):
    """The report, compacted to fit: controller replies passed on as they came (JSON)."""

    diagnostics: JsonObject
    path: str
    errors: tuple[str, ...]
    recent_actions: tuple[Action, ...] = ()  # the autoscaler's, as results.json's autoscaler_actions


@dataclass(frozen=True)
class CloudResource:
    kind: ResourceKind
    name: str
    zone: str


@dataclass(frozen=True)
class CleanupFailure:
    """What could not be deleted (a resource, or `what`: the stop command, the listing) and why."""

    error: str
    command: str
    what: str = ""
    kind: ResourceKind | None = None
    name: str = ""
    zone: str = ""


@dataclass(frozen=True)
class CloudCleanup(Message, kind=Kind.RESULT, tag="cloud_cleanup"):
    deleted: tuple[CloudResource, ...] = ()
    already_gone: tuple[CloudResource, ...] = ()
    failed: tuple[CleanupFailure, ...] = ()
