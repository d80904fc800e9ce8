"""Prometheus metrics of the canary, for node_exporter's textfile collector and for scraping.

A registry of our own (never the global one): the textfile must hold only our series,
since node_exporter refuses a textfile that repeats one of its own names (the global
registry's `process_*` and `python_*` collectors would). For the same reason the
daemon's own fds and memory are `iris_smoke_canary_*` gauges, not `process_*`.

Cardinality stays bounded over months: outcomes are a fixed set, per-test series are
replaced each run (a renamed test does not linger), and streams are summed per run
rather than labelled by VM, whose names churn with the autoscaler. Latencies are
histograms without labels for the same reason (job and slice names carry the run's prefix).

The last success and the failure streak survive restarts: they are kept in
`<state dir>/last_success` (Unix seconds) and `<state dir>/consecutive_failed_runs`, so a
daemon restarted during an outage does not report "never succeeded" for a cluster that
passed an hour ago, nor reset the count that pages.

A run the daemon's own stop cancelled says nothing about the cluster: it is counted by
outcome, but leaves the failure streak, the last success and the per-test series as they were.

Every series carries `cluster` (`[canary] cluster_name`): added at collection time by
`ClusterLabelled`, so no metric can be declared without it.
"""

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    write_to_textfile,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from common.files import write_atomically
from common.outcome import Outcome
from supervisor.canary.config import SUITE_PROBE
from supervisor.canary.latency import RunLatencies
from supervisor.canary.runs import RunSummary
from supervisor.reports import count
from supervisor.version import VERSION

TEXTFILE_NAME = "iris_smoke.prom"
LAST_SUCCESS_NAME = "last_success"
STREAK_NAME = "consecutive_failed_runs"
# A local run takes ~5 s, a cloud one with a TPU slice to boot 5-20 min; the deadline is 30 min.
RUN_DURATION_BUCKETS_S = (5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600)
# Waiting for a slot or a slice: seconds locally, up to tens of minutes for a TPU slice.
LATENCY_BUCKETS_S = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)


def read_number(path: Path, low: float, high: float) -> float | None:
    """A persisted number, or None when absent, unreadable or outside [low, high) (a torn write is
    impossible: it is written atomically, but a hand-edited file may hold anything)."""
    try:
        value = float(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return value if low <= value < high else None


def _persist(path: Path | None, text: str) -> None:
    if path is not None:
        # A full disk must not stop the canary: the gauge is right until the next restart.
        with contextlib.suppress(OSError):
            write_atomically(path, f"{text}\n".encode("ascii"))


class ClusterLabelled:
    """The registries' series, each with `cluster="<name>"` (and its probe's `probe`) added, families
    of the same name merged: what the textfile and /metrics show."""

    def __init__(self, cluster: str, *registries: tuple[CollectorRegistry, dict[str, str]]) -> None:
        self._cluster, self._registries = cluster, registries

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for registry, extra in self._registries:
            for family in registry.collect():
                labelled = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type, family.unit)
                )
                labelled.samples += [
                    Sample(s.name, {"cluster": self._cluster, **extra, **s.labels}, s.value, s.timestamp, s.exemplar)
                    for s in family.samples
                ]
        yield from merged.values()


class ProbeMetrics:
    """One probe's series: its runs, its verdicts, its latencies, its persisted streak and success."""

    def __init__(self, state_dir: Path | None) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self.last_outcome = Gauge(
            "iris_smoke_last_run_outcome", "1 for the outcome of the last run, 0 for the others",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.last_exit_code = Gauge("iris_smoke_last_run_exit_code", "Exit code of the last run", registry=r)
        self.last_duration = Gauge("iris_smoke_last_run_duration_seconds", "Duration of the last run", registry=r)
        self.last_finished = Gauge(
            "iris_smoke_last_run_timestamp_seconds", "Unix time the last run finished", registry=r
        )
        self.last_success = Gauge(
            "iris_smoke_last_success_timestamp_seconds", "Unix time the last passed run finished", registry=r
        )
        self.runs = Counter("iris_smoke_runs", "Runs finished, by outcome", ["outcome"], registry=r)
        self.run_duration = Histogram(
            "iris_smoke_run_duration_seconds", "Duration of finished runs", buckets=RUN_DURATION_BUCKETS_S, registry=r
        )
        self.in_progress = Gauge("iris_smoke_run_in_progress", "1 while a run is in progress", registry=r)
        self.consecutive_failures = Gauge(
            "iris_smoke_consecutive_failed_runs", "Runs in a row that did not pass (0 after a pass)", registry=r
        )
        self.scheduling_latency = Histogram(
            "iris_smoke_scheduling_latency_seconds", "Per test job: submitted to all tasks running",
            buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.scale_up_latency = Histogram(
            "iris_smoke_scale_up_latency_seconds", "Per slice: scale-up action to all its VMs ready",
            buckets=LATENCY_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.last_scheduling_latency = Gauge(
            "iris_smoke_last_run_scheduling_latency_seconds", "Longest scheduling latency of the last run", registry=r
        )
        self.last_scale_up_latency = Gauge(
            "iris_smoke_last_run_scale_up_latency_seconds", "Longest scale-up latency of the last run", registry=r
        )
        self.test_success = Gauge(
            "iris_smoke_test_success", "1 if the test passed in the last run", ["test"], registry=r
        )
        self.test_duration = Gauge(
            "iris_smoke_test_duration_seconds", "Duration of the test in the last run", ["test"], registry=r
        )
        self.interval = Gauge("iris_smoke_probe_interval_seconds", "The probe's interval (its grid)", registry=r)
        self.controller_vitals = Gauge(
            "iris_smoke_controller_vital", "What the last controller_vitals check measured: select_1_seconds, "
            "resident_memory_bytes, threads, open_fds", ["vital"], registry=r,
        )  # fmt: skip
        self.streams = Gauge("iris_smoke_last_run_streams", "Log streams in the last run", registry=r)
        self.stream_lines = Gauge(
            "iris_smoke_last_run_stream_lines",
            "Log lines received by all streams of the last run",
            registry=r,
        )
        self.stream_gaps = Gauge("iris_smoke_last_run_stream_gaps", "Stream gaps in the last run", registry=r)
        self.stream_reconnects = Gauge(
            "iris_smoke_last_run_stream_reconnects", "Stream reconnects in the last run", registry=r
        )
        self.streams_stale = Gauge(
            "iris_smoke_last_run_streams_stale", "Streams reported stale in the last run", registry=r
        )
        self.last_leaked = Gauge(
            "iris_smoke_last_run_leaked_processes", "Processes of the last run left behind", registry=r
        )
        self.leaked = Counter("iris_smoke_leaked_processes", "Processes runs left behind", registry=r)
        self.slots_skipped = Counter(
            "iris_smoke_slots_skipped", "Schedule slots skipped because a run overran", registry=r
        )
        # Every outcome exists from the start, so rate() and absent() work before the first failure.
        for outcome in Outcome:
            self.runs.labels(outcome=outcome.value)
            self.last_outcome.labels(outcome=outcome.value).set(0)
        self._last_success_file = state_dir / LAST_SUCCESS_NAME if state_dir is not None else None
        self._streak_file = state_dir / STREAK_NAME if state_dir is not None else None
        if self._last_success_file and (success := read_number(self._last_success_file, 1e-9, 1e11)) is not None:
            self.last_success.set(success)
        self.streak = 0
        if self._streak_file is not None and (streak := read_number(self._streak_file, 0, 1e12)) is not None:
            self.streak = int(streak)
        self.consecutive_failures.set(self.streak)

    def run_started(self) -> None:
        self.in_progress.set(1)

    def record_run(self, run: RunSummary) -> None:
        for outcome in Outcome:
            self.last_outcome.labels(outcome=outcome.value).set(1 if outcome is run.outcome else 0)
        self.runs.labels(outcome=run.outcome.value).inc()
        self.in_progress.set(0)
        self.last_exit_code.set(run.exit_code)
        self.last_duration.set(run.duration_s)
        self.run_duration.observe(run.duration_s)
        self.last_finished.set(run.finished_unix)
        if run.outcome is not Outcome.CANCELLED:  # a stop of ours says nothing about the cluster
            self._record_verdict(run)
        streams = run.results.streams if run.results else ()
        for gauge, value in (
            (self.streams, len(streams)),
            (self.stream_lines, sum(count(s.lines) for s in streams)),
            (self.stream_gaps, sum(count(s.gaps) for s in streams)),
            (self.stream_reconnects, sum(count(s.reconnects) for s in streams)),
            (self.streams_stale, sum(1 for s in streams if s.stale)),  # streams that went stale at least once
        ):
            gauge.set(value)
        self.last_leaked.set(run.leaked)
        self.leaked.inc(run.leaked)

    def _record_verdict(self, run: RunSummary) -> None:
        """The streak, the last success and the per-test series: what a run says about the cluster."""
        self.streak = 0 if run.outcome is Outcome.PASSED else self.streak + 1
        self.consecutive_failures.set(self.streak)
        _persist(self._streak_file, str(self.streak))
        if run.outcome is Outcome.PASSED:
            self.last_success.set(run.finished_unix)
            _persist(self._last_success_file, f"{run.finished_unix:.3f}")
        self.test_success.clear()
        self.test_duration.clear()
        self.controller_vitals.clear()
        for vital, value in run.vitals.items():
            self.controller_vitals.labels(vital=vital).set(value)
        for test in run.tests:
            self.test_success.labels(test=test.name).set(1 if test.outcome is Outcome.PASSED else 0)
            if test.duration_s is not None:
                self.test_duration.labels(test=test.name).set(test.duration_s)

    def record_latencies(self, latencies: RunLatencies) -> None:
        for histogram, gauge, values in (
            (self.scheduling_latency, self.last_scheduling_latency, latencies.scheduling_s.values()),
            (self.scale_up_latency, self.last_scale_up_latency, latencies.scale_up_s.values()),
        ):
            for value in values:
                histogram.observe(value)
            gauge.set(max(values, default=0.0))


class CanaryMetrics:
    """The daemon's own series and one `ProbeMetrics` per probe. With `[[probes]]` each probe's
    series carry `probe="<name>"`; the one-suite canary's carry no `probe` label (as before probes)."""

    def __init__(self, cluster: str, state_dir: Path | None = None, probes: Sequence[str] = ()) -> None:
        # No `*_created` series: a counter's creation time is the daemon's start time, which
        # iris_smoke_canary_start_time_seconds already says once (the setting is process-wide,
        # and this process has no other metrics).
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client
        r = CollectorRegistry(auto_describe=True)
        self.reloads = Counter("iris_smoke_canary_config_reloads", "SIGHUP reloads, by result", ["result"], registry=r)
        self.open_fds = Gauge("iris_smoke_canary_open_fds", "Open descriptors of the daemon", registry=r)
        self.rss = Gauge("iris_smoke_canary_resident_memory_bytes", "Resident memory of the daemon", registry=r)
        self.started = Gauge("iris_smoke_canary_start_time_seconds", "Unix time the daemon started", registry=r)
        self.started.set(time.time())
        self.build_info = Gauge(
            "iris_smoke_build_info", "Always 1; the version of iris-smoke in its label", ["version"], registry=r
        )
        self.build_info.labels(version=VERSION).set(1)
        for result in ("ok", "failed"):
            self.reloads.labels(result=result)
        # The one suite keeps its files where they always were; a named probe has a directory.
        self.probes = {name: ProbeMetrics(_probe_dir(state_dir, name)) for name in probes} or {
            SUITE_PROBE: ProbeMetrics(state_dir)
        }
        labels = [(m.registry, {"probe": n} if probes else {}) for n, m in self.probes.items()]
        # What is exported: the series above with `cluster`; a registry, so /metrics can filter it.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ClusterLabelled(cluster, (r, {}), *labels))

    def probe(self, name: str | None = None) -> ProbeMetrics:
        return self.probes[name] if name is not None else next(iter(self.probes.values()))

    def run_started(self, probe: str | None = None) -> None:
        self.probe(probe).run_started()

    def record_run(self, run: RunSummary, probe: str | None = None) -> None:
        self.probe(probe).record_run(run)

    def record_resources(self, fds: int, rss_bytes: int) -> None:
        self.open_fds.set(fds)
        self.rss.set(rss_bytes)

    def write_textfile(self, path: Path) -> None:
        """Atomically: write_to_textfile writes `<path>.<pid>.<thread>` and renames it over `path`
        (the temporary name does not end in .prom, so node_exporter never reads half a file)."""
        write_to_textfile(str(path), self.registry)


def _probe_dir(state_dir: Path | None, probe: str) -> Path | None:
    if state_dir is None:
        return None
    path = state_dir / "probes" / probe
    with contextlib.suppress(OSError):
        path.mkdir(parents=True, exist_ok=True)
    return path
