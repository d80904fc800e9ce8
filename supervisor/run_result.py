"""`results.json` as one dataclass tree: `RunResult` is what the run writes, field for field.

The file is `to_json(RunResult)`; `docs/results.schema.json` is generated from these classes
(`scripts/gen_results_schema.py`, checked current in CI), so the schema cannot drift from the
code. A field's `metadata={DOC: ...}` text is its schema description. Everything that reads the
file back (the views, `show`, the history page, the canary) reads it into this same tree with
`from_json_object` (`supervisor/results_file.py` opens the file).
"""

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Literal

from common.jsonshape import DOC, SCHEMA, Json, JsonObject, from_json, schema, to_json_object
from common.outcome import NOT_RUN, ExitCode, FailureReason, Outcome
from supervisor.children import ChildState
from supervisor.config import ClusterKind
from workers.child_args import FLEET_CHECKS
from workers.controller.model import Action
from workers.hosts import Role
from workers.messages import CloudCleanup, ForeignJob, HostsRejected, JobReport, LogTail

TIMESTAMP = {"pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"}
# Bumped when a field is removed or changes meaning.
SCHEMA_VERSION: Literal[1] = 1


@dataclass(frozen=True)
class Child:
    name: str
    role: str
    critical: bool
    state: ChildState
    starts: int
    exit_code: int | None
    stats: JsonObject = field(metadata={DOC: "the child's last STATS message, as sent"})


@dataclass(frozen=True)
class LeakedProcess:
    pid: int
    name: str
    cmdline: str
    status: str


@dataclass(frozen=True)
class Processes:
    spawned: int
    reaped: int
    orphans_reaped: int
    killed_at_stop: int
    leaked: int
    leaked_processes: tuple[LeakedProcess, ...]
    zombies: int
    grpc_imported: bool


@dataclass(frozen=True)
class Cluster:
    kind: ClusterKind
    address: str | None
    mode: str | None
    prefix: str
    vm_prefix: str
    state_dir: str | None
    kept: bool = field(
        metadata={
            DOC: "what --keep left running, as seen at the verdict: the embedded cluster while its process runs, "
            "a gcp cluster's undeleted resources; false otherwise"
        }
    )
    pid: int = field(metadata={DOC: "the cluster process the run started (0: none, attached or gcp)"})
    tunnel_drops: int = 0
    iris_tmp_left: tuple[str, ...] = ()


@dataclass(frozen=True)
class TestEntry:
    name: str
    outcome: Outcome
    error: str
    duration_s: float | None = None  # None: the test never reported
    jobs: tuple[JobReport, ...] = ()
    log_tail: tuple[LogTail, ...] = ()
    details: JsonObject = field(
        default_factory=dict,
        metadata={DOC: "a fleet check's measurements, e.g. controller_vitals: health_s, select_1_s, tree_hash, "
                  "base_commit, python_version, rss_bytes, threads, fds"},
    )  # fmt: skip


@dataclass(frozen=True)
class StreamEntry:
    """A stream child, its host, and its last numbers (STATS at its end, else its last PROGRESS)."""

    name: str
    vm: str | None
    host: int | None
    role: Role | None
    state: ChildState
    starts: int
    no_data: bool
    lines: int | None = None
    bytes: int | None = None
    reconnects: int | None = None
    gaps: int | None = None
    truncated_lines: int | None = None
    invalid_utf8_lines: int | None = None
    untimestamped_lines: int | None = None
    duplicates_skipped: int | None = None
    stale: int | bool | None = field(
        default=None, metadata={DOC: "times the stream went stale (its progress: whether it is now)"}
    )
    failed_connects: int | None = None
    last_error: str | None = None
    capped: bool | None = None
    file_bytes: int | None = None
    last_ts: str | None = None
    next_seq: int | None = None
    last_line_age_s: float | None = None
    transport_exit: int | None = None  # the demo's streams


class LogsAlive(enum.StrEnum):
    """Whether a worker's logs were seen alive: only a line seen says yes."""

    YES = "yes"  # its stream delivered a line
    STREAM_NO_DATA = "stream_no_data"  # its stream was up the whole window and delivered none (the verdict's)
    NO_LINES = "no_lines"  # no line from a stream not up the whole window (started late, stopped, failed)
    NO_STREAM = "no_stream"  # no stream at all: over max_streams, refused, or a host no worker is listed for


@dataclass(frozen=True)
class FleetFinding:
    check: str
    problem: str


@dataclass(frozen=True)
class FleetWorker:
    """One row of the fleet table: a worker as discovery listed it (its latest listing), its stream, and
    what the fleet checks found wrong with it. A row with `listed` false is one only a fleet check named:
    a slice's host no worker is listed for (worker_id empty), or a worker discovery did not pass on."""

    worker_id: str = field(metadata={DOC: "the controller's worker id; empty for a slice's missing host, "
                                          "and for a host listed by VM only (gcp, ssh)"})  # fmt: skip
    listed: bool
    healthy: bool | None = field(metadata={DOC: "as the controller last listed it; null when not said (not listed "
                                                "by it, or a VM host of gcp or ssh)"})  # fmt: skip
    vm: str
    slice: str = field(metadata={DOC: "its slice (tpu-name), empty when it names none"})
    slice_host: int | None = field(metadata={DOC: "its host index in the slice (tpu-worker-id)"})
    group: str = field(metadata={DOC: "its scale group (scale-group)"})
    stream: str | None
    stream_state: ChildState | None
    lines: int | None
    gaps: int | None
    logs_alive: LogsAlive
    findings: tuple[FleetFinding, ...] = field(
        metadata={DOC: "the fleet checks' problems with it: slices_complete (a missing host, an index listed "
                       "twice), worker_attributes (an attribute missing or not its group's)"}
    )  # fmt: skip


@dataclass(frozen=True)
class JobsConfirmed:
    """The tests child's last sweep of the run's job root: jobs it terminated, jobs it saw end (tasks
    included), and those it could not (failure reason jobs_unconfirmed)."""

    terminated: int
    confirmed: int
    unconfirmed: tuple[str, ...]


@dataclass(frozen=True)
class JobsUnreported(JobsConfirmed):
    """The tests child exited without reporting a sweep: every job it launched counts as unconfirmed."""

    reported: Literal[False] = False


@dataclass(frozen=True)
class Observation:
    host_listings: int
    most_failed_listings_in_a_row: int
    hosts_over_limit: int
    hosts_rejected: HostsRejected = field(
        metadata={
            DOC: "the listing with the most hosts refused (failure reason hosts_rejected unless [verdict] "
            'hosts_rejected = "warn")'
        }
    )
    silent_streams: tuple[str, ...] = ()
    most_workers_listed: int = field(
        default=0,
        metadata={
            DOC: "worker hosts (the controller not counted) in the fullest listing; "
            "0 fails an observe run (nothing_observed)"
        },
    )
    observe_s: float | None = field(
        default=None, metadata={DOC: "an observe run's window (s); null for a run with tests"}
    )
    autoscaler_read: bool = field(
        default=False,
        metadata={
            DOC: "whether monitor:autoscaler read a status at least once; "
            "false fails an observe run (autoscaler_unread)"
        },
    )


@dataclass(frozen=True)
class ApiMismatchSeen:
    child: str
    method: str
    field: str
    details: str


@dataclass(frozen=True)
class RefusedSeen:
    """The first call the controller refused for our credentials; `fix` when it was LaunchJob (an
    identity that may observe but not launch: run with --observe, or give it the user role)."""

    child: str
    code: str
    method: str
    credential: str
    details: str
    fix: str | None = None


@dataclass(frozen=True)
class BrokenReplySeen:
    """The first controller reply over its byte cap, or that began and did not end within its call's time."""

    child: str
    method: str
    details: str


@dataclass(frozen=True)
class OutageSeen:
    """The first report of the controller unreachable longer than the bound."""

    child: str
    unavailable_for_s: float


@dataclass(frozen=True)
class SmokeSections:
    """What a smoke run adds to the verdict (a demo run has none of it)."""

    observe: bool = field(
        metadata={
            DOC: "an observe-only run (--observe): it submitted no job, ran no test but the fleet checks (which "
            "launch nothing), and its verdict rests on them and on what discovery, the streams and the monitors "
            "saw (see observation)"
        }
    )
    cluster: Cluster
    cloud_cleanup: CloudCleanup | None
    jobs_confirmed: JobsConfirmed | JobsUnreported | None
    foreign_jobs: tuple[ForeignJob, ...]
    tests: tuple[TestEntry, ...]
    streams: tuple[StreamEntry, ...]
    observation: Observation
    autoscaler_actions: tuple[Action, ...]
    api_mismatch: ApiMismatchSeen | None
    controller_unauthenticated: RefusedSeen | None
    controller_timeout: BrokenReplySeen | None
    reply_too_large: BrokenReplySeen | None
    controller_outage: OutageSeen | None
    diagnostics: JsonObject = field(metadata={DOC: "diagnostics.json, compacted: controller replies as they came"})
    fleet: tuple[FleetWorker, ...] = field(
        default=(),
        metadata={DOC: "the fleet table: one row per worker discovery listed, and per slice host a fleet check "
                       "found missing, with its stream's lines and whether its logs were seen alive"},
    )  # fmt: skip


@dataclass(frozen=True)
class RunResult:
    """The verdict of one run. schema_version changes when a field is removed or changes meaning; new
    fields may appear without a change (consumers ignore unknown fields)."""

    schema_version: Literal[1]
    run_id: str = field(metadata={SCHEMA: {"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}})
    version: str
    started_at: str = field(metadata={DOC: "RFC 3339, UTC, microseconds", SCHEMA: TIMESTAMP})
    finished_at: str = field(metadata={DOC: "RFC 3339, UTC, microseconds", SCHEMA: TIMESTAMP})
    duration_s: float = field(metadata={SCHEMA: {"minimum": 0}})
    timeout_s: float = field(metadata={SCHEMA: {"minimum": 0}})
    outcome: Outcome
    exit_code: ExitCode
    failure_reasons: tuple[FailureReason, ...] = field(metadata={SCHEMA: {"uniqueItems": True}})
    children: tuple[Child, ...]
    processes: Processes
    smoke: SmokeSections | None = None  # flattened into the top level by `as_json`

    # What the views show of a smoke run's sections, empty for a demo run (it has none).
    @property
    def tests(self) -> tuple[TestEntry, ...]:
        return self.smoke.tests if self.smoke else ()

    @property
    def streams(self) -> tuple[StreamEntry, ...]:
        return self.smoke.streams if self.smoke else ()

    @property
    def fleet(self) -> tuple[FleetWorker, ...]:
        return self.smoke.fleet if self.smoke else ()

    @property
    def observe(self) -> bool:
        return self.smoke.observe if self.smoke else False

    @property
    def failed_tests(self) -> list[str]:
        return [t.name for t in self.tests if t.outcome not in (Outcome.PASSED, *NOT_RUN)]


# Described once in the schema's $defs: the enums every consumer matches on, the array items.
SHARED = frozenset({Outcome, FailureReason, LogsAlive, Child, Processes, TestEntry, StreamEntry, FleetWorker})
SCHEMA_ID = "https://github.com/iris-smoke/iris-smoke/docs/results.schema.json"


def as_json(result: RunResult) -> JsonObject:
    """results.json's object: the run's fields, a smoke run's sections beside them (not nested)."""
    top = to_json_object(result)
    smoke = top.pop("smoke")
    return top | (smoke if isinstance(smoke, dict) else {})


_SMOKE_FIELDS = frozenset(f.name for f in dataclasses.fields(SmokeSections))


def from_json_object(top: JsonObject) -> RunResult:
    """`as_json`'s inverse: results.json's object read back into the RunResult the run wrote. ShapeError
    naming the field as the file spells it (`tests[0].duration_s: expected float, got str`); a field this
    version does not know is passed over (another version's file: consumers ignore unknown fields)."""
    run = from_json(RunResult, {k: v for k, v in top.items() if k not in _SMOKE_FIELDS | {"smoke"}},
                    ignore_unknown=True)  # fmt: skip
    if not _SMOKE_FIELDS & top.keys():
        return run  # a demo run's: no smoke section
    sections = {k: v for k, v in top.items() if k in _SMOKE_FIELDS}
    return dataclasses.replace(run, smoke=from_json(SmokeSections, sections, ignore_unknown=True))


def _fleet_checks_only() -> Json:
    return {"items": {"properties": {"name": {"enum": list(FLEET_CHECKS)}}}}


def results_schema() -> JsonObject:
    """docs/results.schema.json: RunResult's fields required, a smoke run's sections optional beside them."""
    defs: dict[str, Json] = {}
    top = schema(RunResult, defs, SHARED)
    smoke = schema(SmokeSections, defs, SHARED)
    assert isinstance(top, dict) and isinstance(smoke, dict)
    properties, smoke_properties = top["properties"], smoke["properties"]
    assert isinstance(properties, dict) and isinstance(smoke_properties, dict) and isinstance(top["required"], list)
    del properties["smoke"]
    top["required"].remove("smoke")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "iris-smoke results.json",
        **top,
        "properties": properties | smoke_properties,
        # An observe run submits nothing: no test but the fleet checks (they launch nothing), no sweep.
        "if": {"required": ["observe"], "properties": {"observe": {"const": True}}},
        "then": {"properties": {"tests": _fleet_checks_only(), "jobs_confirmed": {"type": "null"}}},
        "$defs": dict(sorted(defs.items())),
    }
