"""Each child entrypoint's arguments, one frozen dataclass per entrypoint.

The supervisor builds these before the fork (it imports this module, so it stays free of
grpc and urllib3) and the child receives the object itself as `ctx.args`: nothing is
re-parsed on the far side. The stream child's arguments are `workers.stream.spec.StreamSpec`.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from common.controller_target import ControllerTarget
from workers.controller.model import JobRequest
from workers.gcp.settings import GcpSettings

# A controller that stays unreachable this long is reported (`controller_unavailable`) once.
UNAVAILABLE_REPORT_S = 30.0
# A job's end is seen at most this late; a ListJobs of the run's own root is cheap.
TESTS_POLL_INTERVAL_S = 0.5
# The tests child's stop, in the order it spends it (its grace is their sum, and the
# supervisor's TERM-to-KILL grace for it twice that: supervisor.smoke.TESTS_STOP_GRACE_S):
# a controller call in flight when the stop comes is capped at TESTS_CALL_LIMIT_S; the
# sweep terminates the run's unfinished jobs and confirms them ended within
# JOB_SWEEP_BUDGET_S; the last results and the confirmation go out in TESTS_REPORT_S.
TESTS_CALL_LIMIT_S = 3.0
JOB_SWEEP_BUDGET_S = 4.0
TESTS_REPORT_S = 0.5
TESTS_CHILD_GRACE_S = TESTS_CALL_LIMIT_S + JOB_SWEEP_BUDGET_S + TESTS_REPORT_S
# many_tasks: the replicas of its one job (Iris's own smoke suite runs 50).
MANY_TASKS = 50
# endpoint_registration: the registering task's life; the controller must list its endpoint by then.
ENDPOINT_HOLD_S = 20.0


class ControllerArgs(Protocol):
    """What every child that talks to the controller has (`workers.controller.polling`)."""

    @property
    def target(self) -> ControllerTarget: ...

    @property
    def unavailable_report_s(self) -> float: ...


@dataclass(frozen=True)
class DiscoveryArgs:
    target: ControllerTarget
    prefix: str  # the cluster's VM prefix: only its VMs (and its controller) are listed
    interval_s: float
    unavailable_report_s: float = UNAVAILABLE_REPORT_S


@dataclass(frozen=True)
class MonitorArgs:
    target: ControllerTarget
    out: Path  # the monitor's JSONL file
    interval_s: float
    unavailable_report_s: float = UNAVAILABLE_REPORT_S


@dataclass(frozen=True)
class DiagnosticsArgs:
    target: ControllerTarget
    out_dir: Path
    unavailable_report_s: float = UNAVAILABLE_REPORT_S


@dataclass(frozen=True)
class CustomTest:
    """A `[[tests]]` entry, as the config reader checked it: one job and the state it must end in."""

    job: JobRequest
    expect: str = "succeeded"  # succeeded | failed | unschedulable | killed

    @property
    def name(self) -> str:
        return self.job.name


@dataclass(frozen=True)
class SuiteArgs:
    target: ControllerTarget
    job_timeout_s: float
    standard: tuple[str, ...]
    custom: tuple[CustomTest, ...] = ()
    accelerator: str = ""
    hosts_per_slice: int | None = None
    region: str = ""
    region_attribute: str = ""
    probe: str = "env"
    many_tasks: int = MANY_TASKS
    endpoint_hold_s: float = ENDPOINT_HOLD_S
    poll_interval_s: float = TESTS_POLL_INTERVAL_S
    unavailable_report_s: float = UNAVAILABLE_REPORT_S
    call_limit_s: float = TESTS_CALL_LIMIT_S
    sweep_budget_s: float = JOB_SWEEP_BUDGET_S
    # The run started this controller itself, on this host (embedded, iris-local): a refused
    # connection means it is gone, not a tunnel reconnecting, so the sweep stops retrying it.
    cluster_owned: bool = False

    @property
    def names(self) -> list[str]:
        return [*self.standard, *(t.name for t in self.custom)]


# The fleet checks (workers/fleet), in the order they run: read-only, no job, so an observe run makes them too.
FLEET_CHECKS = ("controller_vitals", "slices_complete", "worker_attributes", "autoscaler_health", "scheduler_budget")


@dataclass(frozen=True)
class FleetSettings:
    """`[fleet]`: the fleet checks' limits (0 = no limit)."""

    query_warn_s: float = 2.0  # controller_vitals: SELECT 1 slower than this is a warning (Iris's oncall notes)
    query_fail_s: float = 10.0  # and slower than this a failure
    max_rss_bytes: int = 0
    max_threads: int = 0
    max_fds: int = 0
    # slices_complete: a slice short of a worker is listed again for this long before it fails (a
    # slice still booting registers its hosts one by one).
    settle_s: float = 10.0


@dataclass(frozen=True)
class FleetArgs:
    target: ControllerTarget
    checks: tuple[str, ...]
    limits: FleetSettings = FleetSettings()
    expect_version: str = ""  # `[iris] expect_version`: the controller's tree hash or base commit
    unavailable_report_s: float = UNAVAILABLE_REPORT_S


# The placeholders of `[iris] tunnel_command`: the local port the run picked, the controller's port.
TUNNEL_FIELDS = frozenset({"port", "remote_port"})


@dataclass(frozen=True)
class TunnelCommand:
    """`[iris] tunnel_command` as the config reader checked it: an argv template, never a shell line."""

    template: tuple[str, ...]
    remote_port: int  # `[iris] controller_port`: the controller's port at the far end

    def argv(self, port: int) -> list[str]:
        """The command for local port `port`: each `{port}` and `{remote_port}` filled in."""
        return [part.format(port=port, remote_port=self.remote_port) for part in self.template]


@dataclass(frozen=True)
class ClusterArgs:
    mode: str  # start | keep | attach | iris-local (workers.cluster.MODES) | gcp | tunnel: the backend's choice
    target: ControllerTarget
    prefix: str
    boot_timeout_s: float
    config: str = ""  # the embedded cluster's TOML
    iris_bin: str = "iris"
    iris_config: str = ""
    gcp: GcpSettings | None = None
    tunnel: TunnelCommand | None = None  # mode tunnel: how to reach the remote Iris
    unavailable_report_s: float = UNAVAILABLE_REPORT_S


@dataclass(frozen=True)
class GcpDiscoveryArgs:
    gcp: GcpSettings
    interval_s: float


@dataclass(frozen=True)
class GcpCleanupArgs:
    gcp: GcpSettings


@dataclass(frozen=True)
class DemoStreamArgs:
    duration_s: float
    interval_s: float
    orphan: bool = False


@dataclass(frozen=True)
class LogReaderArgs:
    """The run's one log reader (workers.log_reader): the Iris it reads, the abstract socket name its
    streams subscribe at (workers.stream.subscription), and how often it polls once caught up."""

    target: ControllerTarget
    name: str
    poll_interval_s: float = 0.5
