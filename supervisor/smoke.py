"""The smoke run: phases over the supervisor's child table, from a cluster to a verdict.

Phases (each a `phase_started`/`phase_finished` pair, each bounded by the one deadline):
1. cluster: start the embedded local cluster or a real Iris local cluster, attach to
   `--controller`, or open a tunnel to one (`--cluster gcp`, `[iris] tunnel_command`)
   (child `cluster`, critical); wait for READY (health answered) within `--boot-timeout`.
   Every other child then gets the same `ControllerTarget`, at the address READY gave:
   which wire (embedded gRPC or Iris Connect) is decided here, once.
2. observers: `discovery` (its HOSTS messages drive `StreamManager`, which gives every
   VM host, the controller included, a `stream:<vm>` child), `monitor:scheduling` and
   `monitor:autoscaler`.
3. tests: the `tests` child submits the suite at once and reports one RESULT per test.
   An observe run (`--observe`) has no tests child: its `observe` phase only watches, for
   `observe_s`, and its verdict rests on what discovery, the streams and the monitors saw.
4. diagnostics: one child gathers autoscaler status, the job table and failed tasks'
   logs before anything is torn down; after a timeout it gets its own short budget.
Cleanup, always, in order: tests, monitors, discovery and streams, then the cluster
(left running with `--keep`), each with one escalation; then the audit.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from common.controller_target import ControllerTarget
from common.jsonshape import from_json, to_json_object
from common.messages import Kind, Message
from common.outcome import FailureReason, Outcome
from supervisor import leftovers
from supervisor.arbiter import Supervisor
from supervisor.backends.base import IRIS_STOP_GRACE_S as IRIS_STOP_GRACE_S  # the longest cluster stop
from supervisor.backends.base import RunView, backend_of
from supervisor.backends.iris import LOG_READER
from supervisor.children import ChildRecord, ChildSpec, ChildState
from supervisor.config import Policy
from supervisor.fleet_table import fleet_rows
from supervisor.phases import phase
from supervisor.preflight import RunPlan
from supervisor.progress import Progress
from supervisor.run_result import (
    ApiMismatchSeen,
    BrokenReplySeen,
    Cluster,
    JobsUnreported,
    Observation,
    OutageSeen,
    RefusedSeen,
    SmokeSections,
    StreamEntry,
    TestEntry,
)
from supervisor.run_result import JobsConfirmed as JobsConfirmedSection
from supervisor.streams import Host, StreamManager, stream_lines, stream_name
from workers.child_args import (
    FLEET_CHECKS,
    TESTS_CHILD_GRACE_S,
    ClusterArgs,
    DiagnosticsArgs,
    FleetArgs,
    MonitorArgs,
    SuiteArgs,
)
from workers.controller.model import ErrorCode
from workers.gcp.settings import GcpSettings
from workers.hosts import Role, VmHost
from workers.messages import (
    ApiMismatchReport,
    BrokenReply,
    CloudCleanup,
    ClusterReady,
    ControllerAvailability,
    ControllerState,
    DiagnosticsResult,
    FailedListings,
    ForeignJob,
    ForeignJobs,
    HostsAssembler,
    HostsPart,
    HostsRejected,
    IrisTmpLeft,
    JobsConfirmed,
    TestResult,
    TestsReady,
    TunnelDrops,
    Unauthenticated,
)
from workers.stream.spec import StreamSpec
from workers.stream.subscription import reader_name
from workers.transports import Transport

# A listing that failed for one of these was not answered at all: the outage rule decides (polling.py).
OUTAGE_CODES = frozenset({ErrorCode.UNAVAILABLE.value, ErrorCode.DEADLINE_EXCEEDED.value})
# A child's reports of a controller problem retrying cannot fix (workers/controller/polling.py),
# by message key, and the failure reason each becomes; the first of each is kept, and ends the run.
CONTROLLER_REPORTS = {
    ApiMismatchReport.TAG: FailureReason.IRIS_API_MISMATCH,
    Unauthenticated.TAG: FailureReason.CONTROLLER_UNAUTHENTICATED,
    ErrorCode.CONTROLLER_TIMEOUT.value: FailureReason.CONTROLLER_TIMEOUT,
    ErrorCode.REPLY_TOO_LARGE.value: FailureReason.REPLY_TOO_LARGE,
}
Seen = ApiMismatchSeen | RefusedSeen | BrokenReplySeen
SeenT = TypeVar("SeenT", ApiMismatchSeen, RefusedSeen, BrokenReplySeen)
# The tests child hard-exits after its own grace (half of this, as for every child): a
# controller call in flight, the sweep that terminates and confirms its jobs, its last messages.
TESTS_STOP_GRACE_S = 2 * TESTS_CHILD_GRACE_S
DIAGNOSTICS_BUDGET_S = 10.0
STREAM_DRAIN_BUDGET_S = 3.0
# Discovery's last listing, and then the streams it starts becoming ready: each at most this long.
LAST_LOOK_BUDGET_S = 2.0
# A small message per stream this often: enough for the live line, cheap at hundreds of streams.
STREAM_PROGRESS_S = 2.0  # streams catching up with their followers at the end of a run
# The cluster must outlive the deadline by the diagnostics budget, or a timed-out run
# could not say why it timed out; and by the tests child's grace, or its sweep after the
# deadline would find no controller to terminate its jobs on.
CLUSTER_EXTRA_S = max(DIAGNOSTICS_BUDGET_S, TESTS_CHILD_GRACE_S) + 5.0
AUTOSCALER_MONITOR = "monitor:autoscaler"
# The one call an identity with read-only rights (Iris's `dashboard` role) is refused, and the fix.
LAUNCH_METHOD = "LaunchJob"
LAUNCH_REFUSED_FIX = "this identity may not launch jobs: run with --observe, or provision it with the user role"


def vm_host_of(host: Host) -> VmHost:
    """A listed host (discovery's entry, or a static `[[ssh.hosts]]` one) as the stream's VmHost."""
    return VmHost(vm=host.vm, host=host.host, role=host.role, address=host.address or host.vm, zone=host.zone,
                  hosts_in_vm=host.hosts_in_vm)  # fmt: skip


@dataclass
class SmokeRun:
    plan: RunPlan
    sup: Supervisor
    cluster: ClusterReady | None = None
    results: dict[str, TestResult] = field(default_factory=dict)
    diagnostics: DiagnosticsResult | None = None
    reports: dict[str, Seen] = field(default_factory=dict)  # CONTROLLER_REPORTS' first of each
    controller_outage: OutageSeen | None = None  # the first outage a child reported
    foreign_jobs: list[ForeignJob] = field(default_factory=list)
    phase: str = "preflight"
    listings: int = 0  # whole host listings received from discovery
    failed_listings: int = 0  # consecutive, as discovery last reported
    most_failed_listings: int = 0
    cloud_cleanup: CloudCleanup | None = None  # GCP: what the cleanup child deleted, or could not
    jobs_confirmed: JobsConfirmed | None = None  # the tests child's sweep: terminated, confirmed, unconfirmed
    tunnel_drops: int = 0
    iris_tmp_left: list[str] = field(default_factory=list)  # what Iris left in its TMPDIR after its stop
    most_workers_listed: int = 0  # worker hosts (not the controller) in the fullest listing
    hosts_rejected: HostsRejected | None = None  # discovery's report of its listing with the most refused
    workers: dict[str, Host] = field(default_factory=dict)  # every worker host listed, its latest entry, by stream
    log_reader: str = ""  # the abstract socket name of the run's log reader (Iris), chosen once

    def __post_init__(self) -> None:
        self.config = self.plan.config
        self.backend = backend_of(self.config.cluster)  # what the cluster's kind does (supervisor/backends)
        self.streams = StreamManager(
            self.sup, self._stream_spec, self.config.streams.gone_grace_s, self.sup.clock,
            max_streams=self.config.streams.max_streams,
        )  # fmt: skip
        self._host_parts = HostsAssembler()
        self.log_reader = reader_name(self.plan.run_id)
        self.progress = Progress(self.sup.deadline, self.describe)
        self.sup.on_message = self._on_message

    def _tick(self) -> float | None:
        """The run's timers, sharing the supervisor's one poll: stream retirement and progress."""
        wakes = [t for t in (self.streams.tick(), self.progress.tick()) if t is not None]
        return min(wakes) if wakes else None

    def describe(self) -> str:
        """One line for the terminal: phase, children, streams, tests."""
        children = self.sup.children.values()
        running = sum(not r.finished for r in children)
        streams = self.streams.records()
        lines = sum(stream_lines(r) for r in streams)
        tests = " ".join(f"{n}={self._outcome_so_far(n)}" for n in self.config.test_names())
        return f"{self.phase} | children {running} running | streams {len(streams)}, {lines} lines | {tests}"

    def _outcome_so_far(self, test: str) -> str:
        result = self.results.get(test)
        return "…" if result is None else result.outcome

    # -- messages -----------------------------------------------------------------------

    def _on_message(self, record: ChildRecord, message: Message) -> None:
        """Each message by its type; the role says which child may send which (a stream's
        progress is the stream manager's business, a cluster's READY is the run's)."""
        role = record.spec.role
        match message:
            case ApiMismatchReport() | Unauthenticated() | BrokenReply():
                self._controller_report(record.name, message)
            case ControllerAvailability():
                self._controller_outage(record.name, message)
            case ClusterReady() if role == "cluster":
                self.cluster = message
            case ForeignJobs() if role == "cluster":
                self.foreign_jobs += message.jobs
            case TunnelDrops() if role == "cluster":
                self.tunnel_drops = message.tunnel_drops
            case IrisTmpLeft() if role == "cluster":
                self.iris_tmp_left = list(message.iris_tmp_left)
            case CloudCleanup() if role == "cleanup":
                self.cloud_cleanup = message
            case HostsPart() if role == "discovery":
                hosts = self._host_parts.feed(message)
                if hosts is not None:
                    self.listings += 1
                    self._listed(hosts)
            case HostsRejected() if role == "discovery":
                if message.count > self.rejected().count:
                    self.hosts_rejected = message
            case FailedListings() if role == "discovery":
                self._failed_listings(message)
            case TestResult() if role in ("tests", "fleet"):
                self.results[message.test] = message
            case JobsConfirmed() if role == "tests":
                self.jobs_confirmed = message
            case DiagnosticsResult() if role == "diagnostics":
                self.diagnostics = message

    def _failed_listings(self, message: FailedListings) -> None:
        self.failed_listings = message.failed_listings
        self.most_failed_listings = max(self.most_failed_listings, self.failed_listings)
        # The verdict fails it anyway: end the run now. Not for a controller gone (the
        # listing not answered): that is an outage, which ends the run after its own bound.
        kept_failing = self.failed_listings >= self.config.verdict.discovery_max_failures
        if kept_failing and message.code not in OUTAGE_CODES:
            self.sup.request_stop(FailureReason.DISCOVERY_FAILED)

    def _controller_report(self, child: str, report: ApiMismatchReport | Unauthenticated | BrokenReply) -> None:
        """The first report of each: an API we do not speak, a refused token, a broken reply (polling.py).
        Each ends the run now, with its cleanup, rather than at its deadline (a canary's can be many
        minutes away): retrying will not change the answer, the verdict is an error already, and a
        child that met one may otherwise wait out its own timeouts (the tests child polls a ListJobs
        it cannot read until its jobs' timeout; discovery lists no hosts)."""
        key = report.code.value if isinstance(report, BrokenReply) else report.TAG
        if key not in CONTROLLER_REPORTS or key in self.reports:
            return
        seen: Seen
        if isinstance(report, ApiMismatchReport):
            seen = ApiMismatchSeen(child, report.method, report.field, report.details)
        elif isinstance(report, Unauthenticated):
            seen = RefusedSeen(child, report.code.value, report.method, report.credential.value, report.details,
                               self._launch_refused(report))  # fmt: skip
        else:
            seen = BrokenReplySeen(child, report.method, report.details)
        self.reports[key] = seen
        self.sup.request_stop(CONTROLLER_REPORTS[key])

    def _controller_outage(self, child: str, message: ControllerAvailability) -> None:
        """The first report of a long outage: nothing left to do needs a controller gone this long, and
        a canary's deadline can be many minutes away: end the run now, with its cleanup."""
        if message.controller is ControllerState.UNAVAILABLE and self.controller_outage is None:
            self.controller_outage = OutageSeen(child, message.unavailable_for_s)
            self.sup.request_stop(FailureReason.CONTROLLER_UNAVAILABLE)

    def _launch_refused(self, refused: Unauthenticated) -> str | None:
        """A LaunchJob refused for who we are, while the rest was answered: an identity that may
        observe but not launch (Iris's read-only `dashboard` role). Said once, with the fix. Not
        when the proxy in front of Iris refused it (`credential=proxy`): no Iris role helps then."""
        if refused.method.rsplit("/", 1)[-1] != LAUNCH_METHOD or refused.credential == "proxy":
            return None
        self.sup.log.error("launch_not_permitted", code=refused.code, method=refused.method, fix=LAUNCH_REFUSED_FIX)
        return LAUNCH_REFUSED_FIX

    def _listed(self, hosts: list[Host]) -> None:
        """A whole host listing (discovery's, or the static ssh hosts): streams, and how many workers."""
        workers = {stream_name(h): h for h in hosts if h.role is Role.WORKER}
        self.most_workers_listed = max(self.most_workers_listed, len(workers))
        self.workers |= workers
        self.streams.update(hosts)

    # -- the supervisor's work (supervisor/run.py `Work`) ------------------------------

    def run(self, log: Any) -> None:
        """The phases in order; a cluster that never became ready ends the run early."""
        with self._phase(log, "clean_start"):
            self.delete_leftovers("start")
        with self._phase(log, "cluster"):
            ready = self.start_cluster()
        if not ready:
            return
        with self._phase(log, "observers"):
            self.start_observers()
        if self.config.observe:
            with self._phase(log, "observe"):
                self.observe()
        else:
            with self._phase(log, "tests"):
                self.run_tests()
        if self.sup.stop_reason is None:
            self.streams.close_window()  # a stopped run observed no whole window
        if self.sup.stop_reason in (None, FailureReason.DEADLINE_EXCEEDED):
            with self._phase(log, "diagnostics"):
                self.collect_diagnostics()

    def stop(self) -> None:
        self.phase = "cleanup"
        self.progress.tick()
        self.stop_in_order()
        self.progress.finish()  # the verdict line (stderr) takes the progress line's place

    def verdict(self) -> tuple[list[FailureReason], SmokeSections]:
        return self.failures(), self.summary_extra()

    @contextlib.contextmanager
    def _phase(self, log: Any, name: str) -> Iterator[None]:
        """The progress line and the phase events name the same phase."""
        self.phase = name
        with phase(log, name):
            yield

    # -- phases -------------------------------------------------------------------------

    def delete_leftovers(self, when: str) -> None:
        """A cluster this run owns starts clean and ends clean: nothing else on its prefix."""
        if not self.backend.sweeps_leftovers(self.config):
            return  # a real Iris local cluster lives in the run directory: nothing of it outlives the run
        found = leftovers.local_clusters(self.plan.prefix, spare_kept=when == "end")
        report = leftovers.delete(leftovers.outside_our_tree(found))
        self.sup.log.info("leftovers_deleted", when=when, prefix=self.plan.prefix, found=len(report.found),
                          killed=report.killed, processes=[p.cmdline[:80] for p in report.found])  # fmt: skip

    @property
    def address(self) -> str:
        assert self.cluster is not None
        return self.cluster.address

    @property
    def cluster_prefix(self) -> str:
        """The prefix that names the cluster's VMs: its own when it says (an attached embedded
        cluster was started by another run), else this run's."""
        return (self.cluster.prefix if self.cluster else "") or self.plan.prefix

    @property
    def target(self) -> ControllerTarget:
        return self.plan.target(self.address)

    @property
    def gcp(self) -> GcpSettings:
        return self.config.gcp.with_prefix(self.plan.prefix)

    def suite_args(self) -> SuiteArgs:
        """The tests and their sizing overrides; the run's own iris-local config names its regions `pool`."""
        suite = self.config.suite
        return SuiteArgs(
            target=self.target,
            job_timeout_s=self.config.job_timeout_s,
            standard=tuple(self.config.standard_tests()),
            custom=tuple(self.config.selected_custom_tests()),
            accelerator=suite.accelerator,
            hosts_per_slice=suite.hosts_per_slice or None,
            region=suite.region,
            region_attribute=suite.region_attribute or self.backend.region_attribute(self.config),
            probe=suite.probe,
            many_tasks=suite.many_tasks,
            unavailable_report_s=self.config.verdict.controller_outage_s,
            cluster_owned=self.backend.cluster_child(self.config).owned,
        )

    def start_cluster(self) -> bool:
        child = self.backend.cluster_child(self.config)
        record = self.sup.add(
            ChildSpec.once(
                "cluster",
                child.entrypoint,
                ClusterArgs(
                    mode=child.mode,
                    target=self.plan.target(),
                    prefix=self.plan.prefix,
                    boot_timeout_s=self.config.boot_timeout_s,
                    config=self.config.local_cluster_config,
                    iris_bin=self.config.iris.bin,
                    iris_config=self.config.iris.config,
                    gcp=self.gcp,
                    tunnel=self.config.tunnel,
                    unavailable_report_s=self.config.verdict.controller_outage_s,
                ),
                critical=True,
                stop_grace_s=child.stop_grace_s,
                deadline_at=self.sup.deadline.at + CLUSTER_EXTRA_S,
            )
        )
        self.sup.run_until(lambda: self.cluster is not None or record.finished, tick=self._tick)
        # The cluster child is critical, so its failure may already have stopped the run;
        # the verdict still says what failed, not only that a critical child did.
        if self.cluster is None and self.sup.stop_reason in (None, FailureReason.CRITICAL_CHILD_FAILED):
            # Nothing was to start: the controller never answered.
            reason = FailureReason.CONTROLLER_UNREACHABLE if child.reach_only else FailureReason.CLUSTER_START_FAILED
            self.sup.failures.append(reason)
            self.sup.request_stop(reason)
        return self.cluster is not None and self.sup.stop_reason is None

    def start_observers(self) -> None:
        """The log reader, monitors, and the host set: the backend's discovery child, or the hosts it was
        configured with. The reader comes first: the streams discovery brings subscribe to it."""
        reader = self.backend.log_reader(self.view())
        if reader is not None:
            self.sup.add(reader)
        discovery = self.backend.discovery(self.view())
        if isinstance(discovery, ChildSpec):
            self.sup.add(discovery)
        else:
            self._listed(discovery)
        self.sup.add(ChildSpec(
            name="monitor:scheduling", role="monitor", entrypoint="workers.monitors.scheduling:main",
            args=self._monitor_args("scheduling.jsonl"),
        ))  # fmt: skip
        self.sup.add(ChildSpec(
            name=AUTOSCALER_MONITOR, role="monitor", entrypoint="workers.monitors.autoscaler:main",
            args=self._monitor_args("autoscaler.jsonl"),
        ))  # fmt: skip
        if self.config.fleet_checks():
            self.sup.add(ChildSpec.once("fleet", "workers.fleet:main", FleetArgs(
                self.target, tuple(self.config.fleet_checks()), self.config.fleet, self.config.iris.expect_version,
                self.config.verdict.controller_outage_s,
            )))  # fmt: skip

    def _fleet_done(self) -> bool:
        fleet = self.sup.children.get("fleet")
        return fleet is None or fleet.finished

    def _monitor_args(self, out: str) -> MonitorArgs:
        outage_s = self.config.verdict.controller_outage_s
        return MonitorArgs(self.target, self.plan.run_dir / out, self.config.monitor_every_s, outage_s)

    def run_tests(self) -> None:
        """The tests child, when anything but fleet checks is selected; and the fleet checks' end."""
        if not self.suite_args().names:
            self.sup.run_until(self._fleet_done, tick=self._tick)
            return
        record = self.sup.add(
            ChildSpec.once(
                "tests", "workers.smoke_tests:main", self.suite_args(), critical=True, stop_grace_s=TESTS_STOP_GRACE_S
            )
        )
        self.sup.run_until(lambda: record.finished and self._fleet_done(), tick=self._tick)

    def observe(self) -> None:
        """An observe run's window: serve the observers for `observe_s` (a stop or the deadline ends it
        sooner); no job is submitted."""
        ends = self.sup.clock() + self.config.observe_s
        self.sup.log.info("observe_window", observe_s=self.config.observe_s)

        def tick() -> float | None:
            wake = self._tick()
            left = ends - self.sup.clock()
            if left <= 0:  # past the window, waiting for the fleet child: its exit wakes the loop
                return wake
            return left if wake is None else min(wake, left)

        # The fleet checks end well within any window; a window shorter than they take waits for them.
        self.sup.run_until(lambda: self.sup.clock() >= ends and self._fleet_done(), tick=tick)

    def collect_diagnostics(self) -> None:
        now = self.sup.clock()
        budget_end = now + DIAGNOSTICS_BUDGET_S
        deadline_at = budget_end if self.sup.deadline.expired() else min(self.sup.deadline.at, budget_end)
        args = DiagnosticsArgs(self.target, self.plan.run_dir, self.config.verdict.controller_outage_s)
        record = self.sup.add(ChildSpec.once("diagnostics", "workers.diagnostics:main", args, deadline_at=deadline_at))
        # Past the deadline diagnostics still get their budget (they say why it passed);
        # a SIGTERM or SIGINT means the operator wants the run over: cut them short.
        signalled = (FailureReason.SIGTERM, FailureReason.SIGINT)
        self.sup.serve(deadline_at - now, lambda: record.finished or self.sup.stop_reason in signalled)

    # -- cleanup ------------------------------------------------------------------------

    def stop_in_order(self) -> None:
        """Stop the run's children in dependency order, each group with one escalation.

        Streams are drained first: the lines a run most needs are its last ones (the
        failure), and a stream started moments ago may not have caught up yet.
        """
        order = (("tests", "diagnostics", "fleet"), ("monitor", "discovery"), ("stream",), (LOG_READER,), ("cluster",))
        for roles in order:
            if "discovery" in roles and self.sup.stop_reason is None:
                self.last_look()
            group = [r for r in self.sup.children.values() if r.spec.role in roles and not r.finished]
            if "stream" in roles and self.sup.stop_reason not in (FailureReason.SIGTERM, FailureReason.SIGINT):
                group = self.sup.drain(group, STREAM_DRAIN_BUDGET_S)
            if group:
                self.sup.stop_children(group)
            self.sup.log.info("cleanup_step", roles=list(roles), stopped=len(group))
        self.delete_leftovers("end")
        self.backend_cleanup()

    def last_look(self) -> None:
        """One last listing once the tests are over: a host that came up within the last discovery
        interval (a slice that booted for the final test) gets its stream, and is drained with the rest."""
        discovery = self.sup.children.get("discovery")
        if discovery is None or discovery.finished:
            return
        before = {r.name for r in self.streams.records()}
        self.sup.drain([discovery], LAST_LOOK_BUDGET_S)
        new = [r for r in self.streams.records() if r.name not in before]
        # A stream signalled before its handler is set would miss the drain: let it start first.
        self.sup.serve(LAST_LOOK_BUDGET_S, lambda: all(r.state is not ChildState.STARTING for r in new))
        self.sup.log.info("cleanup_step", roles=["last_look"], new_streams=len(new))

    def backend_cleanup(self) -> None:
        """The kind's own cleanup child, if it has one (gcp: delete the prefix's resources); also after a stop
        or timeout."""
        cleanup = self.backend.cleanup(self.view(), self.sup.clock())
        if cleanup is None:
            return
        record = self.sup.add(cleanup.spec)
        self.sup.serve(cleanup.budget_s + 1.0, lambda: record.finished)
        self.sup.log.info(
            "cleanup_step", roles=["cloud"], deleted=len(self.cloud_cleanup.deleted) if self.cloud_cleanup else 0
        )

    # -- children specs -----------------------------------------------------------------

    def view(self) -> RunView:
        """The run as its backend sees it (`cluster`: the cluster's READY, None until it came)."""
        target = self.plan.target(self.cluster.address if self.cluster else "")
        return RunView(self.config, self.plan.prefix, self.cluster, target, self.cluster_prefix, self.log_reader)

    def _transport(self, host: Host) -> Transport:
        return self.backend.transport(self.view(), host)

    def _stream_spec(self, host: Host) -> ChildSpec:
        """Raises HostileNameError for a name no command line may see (discovery filters them first)."""
        streams = self.config.streams
        return ChildSpec(
            name=stream_name(host),
            role="stream",
            entrypoint="workers.stream.child:main",
            preload=True,
            args=StreamSpec(
                host=vm_host_of(host),
                container=host.container,
                transport=self._transport(host),
                max_line_bytes=streams.max_line_bytes,
                max_bytes=streams.bytes_per_stream,
                stale_after_s=streams.stale_after_s,
                progress_interval_s=STREAM_PROGRESS_S,
            ),
        )

    # -- the verdict's parts ------------------------------------------------------------

    def failures(self) -> list[FailureReason]:
        reasons = [reason for key, reason in CONTROLLER_REPORTS.items() if key in self.reports]
        if self.controller_outage is not None:
            reasons.append(FailureReason.CONTROLLER_UNAVAILABLE)
        judged = [t for t in self.test_results() if t.outcome is not Outcome.SKIPPED]
        if self.sup.stop_reason is None and any(t.outcome is not Outcome.PASSED for t in judged):
            reasons.append(FailureReason.TEST_FAILED)
        if self.foreign_jobs:
            reasons.append(FailureReason.FOREIGN_JOB)
        if self.cloud_cleanup is not None and self.cloud_cleanup.failed:
            reasons.append(FailureReason.CLOUD_CLEANUP_FAILED)
        unconfirmed = self.unconfirmed_jobs()
        if unconfirmed:
            # A cluster the run stops takes its jobs with it (and the audit proves their processes
            # gone); only on one that outlives the run (attached, tunnelled to, --keep) may they go on running.
            outlives = self.config.outlives_run
            self.sup.log.warning("jobs_unconfirmed", jobs=unconfirmed, cluster_outlives_run=outlives)
            if outlives:
                reasons.append(FailureReason.JOBS_UNCONFIRMED)
        return reasons + self._observation_failures()

    def unconfirmed_jobs(self) -> list[str]:
        """The jobs the tests child could not see end; all it launched if it exited without saying (killed)."""
        if self.jobs_confirmed is not None:
            return list(self.jobs_confirmed.unconfirmed)
        tests = self.sup.children.get("tests")
        ready = tests.last_of(TestsReady) if tests is not None else None
        return [j for t in ready.jobs for j in t.job_ids] if ready is not None else []

    def _observation_failures(self) -> list[FailureReason]:
        """Seeing nothing, or less than everything, is not a pass (docs: "A verdict on what was seen")."""
        reasons, verdict, log = [], self.config.verdict, self.sup.log
        discovery = self.sup.children.get("discovery")
        never_listed = discovery is not None and self.listings == 0 and self.sup.stop_reason is None
        if never_listed or self.most_failed_listings >= verdict.discovery_max_failures:
            log.error("discovery_kept_failing", listings=self.listings, most_failed_in_a_row=self.most_failed_listings,
                      max_failures=verdict.discovery_max_failures)  # fmt: skip
            reasons.append(FailureReason.DISCOVERY_FAILED)
        if self.streams.all_failed():
            log.error("streams_all_failed", streams=len(self.streams.records()))
            reasons.append(FailureReason.STREAMS_FAILED)
        for name in self.streams.silent():
            log.warning("stream_no_data", child=name, policy=verdict.silent_streams)
        if self.streams.silent() and verdict.silent_streams is Policy.FAIL:
            reasons.append(FailureReason.STREAM_NO_DATA)
        for name, error in self.streams.lost().items():
            log.warning("stream_lost", child=name, last_error=error)
        if self.streams.lost():
            reasons.append(FailureReason.STREAM_LOST)
        if self.streams.most_over_limit and verdict.hosts_over_limit is Policy.FAIL:
            reasons.append(FailureReason.HOSTS_OVER_LIMIT)
        if self.rejected().count and verdict.hosts_rejected is Policy.FAIL:
            reasons.append(FailureReason.HOSTS_REJECTED)
        if self.config.observe and self.sup.stop_reason is None:
            reasons += self._observe_failures(listed=self.listings > 0 or discovery is None)
        return reasons

    def _observe_failures(self, listed: bool) -> list[FailureReason]:
        """With no test to vouch for the cluster, an observe run must have seen it: a worker host
        listed (a listing that never came is `discovery_failed` already), the autoscaler read."""
        reasons, log = [], self.sup.log
        if listed and self.most_workers_listed == 0:
            log.warning("nothing_observed", host_listings=self.listings, workers_listed=0)
            reasons.append(FailureReason.NOTHING_OBSERVED)
        monitor = self.sup.children.get(AUTOSCALER_MONITOR)
        if monitor is not None and not self._autoscaler_read():
            log.warning("autoscaler_unread", child=monitor.name, state=monitor.state)
            reasons.append(FailureReason.AUTOSCALER_UNREAD)
        return reasons

    def rejected(self) -> HostsRejected:
        """The most hosts refused in one listing, by discovery or by the streams (its report)."""
        streams = self.streams.most_rejected.report()
        discovery = self.hosts_rejected or streams
        return discovery if discovery.count >= streams.count else streams

    def test_results(self) -> list[TestEntry]:
        # A test the run's stop cut short did not fail: cancelled when a signal stopped the run,
        # timeout for any other stop (the deadline, a critical child), whatever the child said.
        signalled = self.sup.stop_reason in (FailureReason.SIGTERM, FailureReason.SIGINT)
        cut_short = Outcome.CANCELLED if signalled else Outcome.TIMEOUT
        results = []
        for name in self.config.test_names():
            result = self.results.get(name)
            if result is not None:
                outcome = cut_short if result.outcome is Outcome.CANCELLED else result.outcome
                results.append(TestEntry(name, outcome, result.error, result.duration_s, result.jobs,
                                         result.log_tail, result.details))  # fmt: skip
            elif self.sup.stop_reason is not None:
                results.append(TestEntry(name, cut_short, f"run stopped: {self.sup.stop_reason}"))
            else:
                results.append(TestEntry(name, Outcome.ERROR, "no result: the tests child ended first"))
        return results

    def stream_stats(self) -> list[StreamEntry]:
        stats, silent = [], set(self.streams.silent())
        for record in self.streams.records():
            host = self.streams.hosts.get(record.name)
            numbers = record.numbers()
            stats.append(from_json(StreamEntry, {
                "name": record.name,
                "vm": host.vm if host else None,
                "host": host.host if host else None,
                "role": host.role.value if host else None,
                "state": record.state.value,
                "starts": record.starts,
                "no_data": record.name in silent,
                **(to_json_object(numbers) if numbers is not None else {}),
            }))  # fmt: skip
        return stats

    def _autoscaler_read(self) -> bool:
        monitor = self.sup.children.get(AUTOSCALER_MONITOR)
        return monitor is not None and Kind.READY in monitor.last

    def _jobs_confirmed(self) -> JobsConfirmedSection | JobsUnreported | None:
        """The sweep's report; when the tests child launched jobs and never reported one, every job unconfirmed."""
        if self.jobs_confirmed is not None:
            j = self.jobs_confirmed
            return JobsConfirmedSection(j.terminated, j.confirmed, j.unconfirmed)
        if not self.unconfirmed_jobs():
            return None
        return JobsUnreported(0, 0, tuple(self.unconfirmed_jobs()))

    def _kept(self) -> bool:
        """What `--keep` really left: a gcp cluster's resources (not deleted), or the embedded
        cluster, only if it became ready and its process still runs now, at the verdict."""
        if not self.config.keep or self.cluster is None:
            return False
        return self.backend.kept(self.cluster.cluster_pid)

    def summary_extra(self) -> SmokeSections:
        diagnostics, ready = self.diagnostics, self.cluster
        cluster = Cluster(
            kind=self.config.cluster, address=ready.address if ready else None, mode=ready.mode if ready else None,
            prefix=self.plan.prefix, vm_prefix=self.cluster_prefix, state_dir=ready.state_dir if ready else None,
            kept=self._kept(), pid=ready.cluster_pid if ready else 0, tunnel_drops=self.tunnel_drops,
            iris_tmp_left=tuple(self.iris_tmp_left),
        )  # fmt: skip
        observation = Observation(
            host_listings=self.listings, most_failed_listings_in_a_row=self.most_failed_listings,
            hosts_over_limit=self.streams.most_over_limit, hosts_rejected=self.rejected(),
            silent_streams=tuple(self.streams.silent()), most_workers_listed=self.most_workers_listed,
            observe_s=self.config.observe_s if self.config.observe else None, autoscaler_read=self._autoscaler_read(),
        )  # fmt: skip
        streams = self.stream_stats()
        checks = {name: r for name, r in self.results.items() if name in FLEET_CHECKS}
        return SmokeSections(
            observe=self.config.observe, cluster=cluster, cloud_cleanup=self.cloud_cleanup,
            jobs_confirmed=self._jobs_confirmed(), foreign_jobs=tuple(self.foreign_jobs),
            tests=tuple(self.test_results()), streams=tuple(streams), observation=observation,
            autoscaler_actions=diagnostics.recent_actions if diagnostics else (),
            api_mismatch=self._seen(ApiMismatchReport.TAG, ApiMismatchSeen),
            controller_unauthenticated=self._seen(Unauthenticated.TAG, RefusedSeen),
            controller_timeout=self._seen(ErrorCode.CONTROLLER_TIMEOUT.value, BrokenReplySeen),
            reply_too_large=self._seen(ErrorCode.REPLY_TOO_LARGE.value, BrokenReplySeen),
            controller_outage=self.controller_outage, diagnostics=diagnostics.diagnostics if diagnostics else {},
            fleet=fleet_rows(self.workers.values(), streams, checks),
        )  # fmt: skip

    def _seen(self, key: str, kind: type[SeenT]) -> SeenT | None:
        seen = self.reports.get(key)
        assert seen is None or isinstance(seen, kind), (key, seen)
        return seen
