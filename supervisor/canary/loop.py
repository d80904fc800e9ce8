"""The canary daemon: smoke runs back to back on a fixed grid, for months.

Design, in the order things happen:
- Preflight (`cli.py`): config merged and checked, budgets checked against the unit's
  limits, the state lock taken, logging to `<state>/canary-events.jsonl` and stdout.
- Start-up (`Canary.__enter__`): child subreaper (a crashed run's orphans come back to us),
  record-only signal handlers writing to a pipe, metrics (textfile, and `/metrics` with
  `/healthz` at `listen`), a retention pass, then READY=1.
- The loop (`serve`): the shared loop core (`supervisor.loop`), whose poll set holds
  only the signal pipe, with a timeout that is the nearest of the next slot, the next
  watchdog ping and the running run's limit. SIGCHLD only wakes it. After every wake:
  signals are dispatched, exited processes reaped (by the core, the only wait in this
  process), limits enforced, the watchdog pinged when due, and a run started when its
  slot has come. The loop then publishes its state to the endpoint (`/healthz` judges it;
  a state not refreshed for `endpoint.STALL_S` is a wedged loop).
- A run is `iris-smoke run` in its own session (`runs.spawn`). When it has been reaped,
  the daemon audits its tag, reads its results.json, updates metrics, applies retention,
  and computes the next slot (skipped slots are counted and logged).
- SIGTERM/SIGINT: STOPPING=1; with a run in progress, the signal is forwarded to it and
  the daemon waits up to the cleanup budget from the stop (asking systemd for that much time
  with EXTEND_TIMEOUT_USEC), then KILLs what is left. Such a run is `cancelled`: counted,
  but not a failure (metrics.py). Then it exits 0. A second signal
  KILLs at once. SIGHUP reloads the config; a bad one is logged and the old one kept.
- The daemon never imports grpc and never forks without exec; the endpoint's server
  thread is the only thread, which is safe only because of that.
"""

import contextlib
import dataclasses
import enum
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from common import linux, logs, processes
from common.deadline import Clock
from common.errors import ConfigError
from common.outcome import Outcome
from common.processes import KILL_WAIT_S
from supervisor import audit
from supervisor.canary import budgets, endpoint, latency, runs, schedule
from supervisor.canary.config import CanaryConfig, Probe
from supervisor.canary.endpoint import Endpoint, LoopState, ProbeState
from supervisor.canary.metrics import TEXTFILE_NAME, CanaryMetrics
from supervisor.canary.retention import Retention
from supervisor.canary.sdnotify import Notifier, watchdog_interval_s
from supervisor.loop import Loop
from supervisor.reaper import Exit
from supervisor.report_html import RENDER_TIMEOUT_S, index_argv

# Nothing needs the loop more often than this when idle; it bounds a missed wake-up.
MAX_WAIT_S = 60.0
# The events file of a daemon that runs for months is rotated once (to `.1`) past this.
EVENTS_MAX_BYTES = 64 * 1024**2
# How often to re-ask systemd for time while waiting for a run's cleanup.
EXTEND_EVERY_S = 5.0
# Reloading swaps these only with a restart: the lock and the listening socket are held.
RESTART_ONLY_FIELDS = ("state_dir", "listen", "cluster_name", "probes")


class Phase(enum.StrEnum):
    STARTING = "starting"
    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass
class ProbeSchedule:
    """A probe's place on its own grid: `first + k * interval`, as the one suite's always was."""

    probe: Probe
    order: int  # its place in the config: when several probes are due, the longest-waiting goes
    # first, and among slots due at the same time the one declared first
    next_slot: float | None = None
    last_slot: float | None = None
    # Grid slots since the probe's first run: runs and skipped slots add up to it (run_spawned's `slot`).
    next_index: int = 0
    last_index: int = 0
    last_run: runs.LastRun | None = None


@dataclass
class ActiveRun:
    run_id: str
    probe: str
    pid: int
    slot_at: float
    started_at: float
    started_unix: float
    limit_at: float  # run timeout + cleanup budget: past it, the run is wedged and gets KILLed
    term_sent_at: float | None = None
    killed: bool = False
    exit_code: int | None = None


@dataclass
class IndexRender:
    """The history page's renderer, a child of the loop like a run: rendering never blocks the
    loop (its watchdog pings, signals and `/healthz` go on), and the one reaper reaps it."""

    pid: int
    limit_at: float  # RENDER_TIMEOUT_S after its start: past it, it is KILLed
    killed: bool = False
    again: bool = False  # the runs changed while it rendered: render once more when it ends


Reloader = Callable[[], CanaryConfig]


class Canary:
    def __init__(
        self,
        config: CanaryConfig,
        reload: Reloader,
        *,
        environ: dict[str, str],
        log_level: str = "info",
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self._reload = reload
        self._environ = environ
        self._clock = clock
        self._log_level = log_level
        self.phase = Phase.STARTING
        self.log = logs.get_logger()
        self.notifier = Notifier(environ)
        self.metrics = CanaryMetrics(config.cluster, config.state_dir, [p.name for p in config.probes])
        self.probes = {p.name: ProbeSchedule(p, i) for i, p in enumerate(config.schedule)}
        self.server: Endpoint | None = None
        self.runs_dir = config.state_dir / "runs"
        self.textfile = config.state_dir / "metrics" / TEXTFILE_NAME
        self.retention = Retention(self.runs_dir)
        self.run: ActiveRun | None = None
        self.render: IndexRender | None = None
        self.runs_done = 0
        self.exit_code = 0
        self._loop = Loop(self._handle_signals)
        self._stop_reason: str | None = None
        self._watchdog_s = watchdog_interval_s(environ, os.getpid())
        self._watchdog_at = clock()
        self._extend_at = 0.0
        self._me = psutil.Process()

    # -- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> "Canary":
        listen, cluster = self.config.listen, self.config.cluster
        try:
            self.server = Endpoint(self.metrics.registry, listen, cluster, self._clock)
        except OSError as exc:
            raise ConfigError(
                f"--listen: cannot listen on {listen}: {exc.strerror} "
                "(each canary on a host needs its own listen address and cluster_name)"
            ) from None
        self.log.info("endpoint_serving", address=listen.host, port=self.server.port, cluster=cluster)
        for state in self.probes.values():
            state.last_run = runs.last_on_disk(self.runs_dir, state.probe.name)
            self.metrics.probe(state.probe.name).interval.set(state.probe.interval_s)
        self._publish()
        linux.set_child_subreaper()
        self._loop.open()
        for path in (self.runs_dir, self.textfile.parent):
            path.mkdir(parents=True, exist_ok=True)
        self._write_metrics()
        self._apply_retention()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.run is not None:  # only after a crash of the loop: never leave a run behind
            self._kill_run(self.run, "daemon_crashed")
            self._wait_until(KILL_WAIT_S, lambda: self.run is None or self.run.exit_code is not None)
        if self.server is not None:
            self.server.close()
        self._loop.close()
        self.notifier.close()

    def serve(self) -> int:
        for state in self.probes.values():
            state.next_slot = self._clock()
        self._set_phase(Phase.IDLE)
        self.notifier.ready(self._status())
        self.log.info("canary_ready", watchdog_s=self._watchdog_s, notify=self.notifier.enabled)
        while not self._finished():
            if (due := self._due_probe()) is not None:
                self._start_run(due)
            self._after_wake(self._loop.poll_once(self._next_wake()))
        self._set_phase(Phase.STOPPED)
        self.log.info(
            "canary_stopped",
            reason=self._stop_reason,
            runs=self.runs_done,
            exit_code=self.exit_code,
            # The fork/gRPC rule, checked where it matters: the parent of runs never loads grpc.
            grpc_imported="grpc" in sys.modules,
        )
        return self.exit_code

    def _finished(self) -> bool:
        if self.run is not None:
            return False
        limit = self.config.max_runs
        if self._stop_reason is None and limit is not None and self.runs_done >= limit:
            self._request_stop("max_runs")
        return self._stop_reason is not None and self.render is None

    def _due_probe(self) -> ProbeSchedule | None:
        """The probe to run now, if any: one run at a time, so of several due probes the one whose
        slot came first runs, ties going to the one declared first; the others wait their turn."""
        if self.run is not None or self._stop_reason is not None:
            return None
        now = self._clock()
        due = [p for p in self.probes.values() if p.next_slot is not None and now >= p.next_slot]
        return min(due, key=lambda p: (p.next_slot, p.order), default=None)

    def _next_slot(self) -> float | None:
        return min((p.next_slot for p in self.probes.values() if p.next_slot is not None), default=None)

    # -- waiting --------------------------------------------------------------------------

    def _next_wake(self) -> float:
        now = self._clock()
        wakes = [MAX_WAIT_S if self.server is None else endpoint.HEARTBEAT_S]
        if self._watchdog_s is not None:
            wakes.append(self._watchdog_at - now)
        if self.run is None and (next_slot := self._next_slot()) is not None and self._stop_reason is None:
            wakes.append(next_slot - now)
        if self.render is not None and not self.render.killed:
            wakes.append(self.render.limit_at - now)
        if self.run is not None and not self.run.killed:
            # After a KILL only SIGCHLD matters: a limit in the past would make this a busy loop.
            wakes.append(self._run_limit(self.run) - now)
            if self.run.term_sent_at is not None:
                wakes.append(self._extend_at - now)
        return max(0.0, min(wakes))

    def _after_wake(self, exits: list[Exit]) -> None:
        self._exited(exits)
        if self.run is not None:
            self._enforce_limits(self.run)
        self._bound_render()
        self._ping_watchdog()
        self._publish()

    def _publish(self) -> None:
        if self.server is not None:
            probes = tuple(ProbeState(p.probe.name, p.probe.interval_s, p.last_run) for p in self.probes.values())
            self.server.publish(LoopState(self._clock(), str(self.phase), probes))

    def _wait_until(self, timeout_s: float, done: Callable[[], bool]) -> bool:
        """Serve the loop (signals, reaping, watchdog) until `done()` or `timeout_s`."""
        end = self._clock() + timeout_s
        while not done():
            left = end - self._clock()
            if left <= 0:
                return False
            self._after_wake(self._loop.poll_once(min(left, 0.05, self._next_wake())))
        return True

    def _ping_watchdog(self) -> None:
        if self._watchdog_s is not None and self._clock() >= self._watchdog_at:
            self.notifier.watchdog()
            self._watchdog_at = self._clock() + self._watchdog_s

    # -- signals ----------------------------------------------------------------------------

    def _handle_signals(self, received: list[signal.Signals]) -> None:
        for sig in received:
            self.log.info("signal_received", signal=sig.name)
            if sig is signal.SIGHUP:
                self.reload()
            elif self._stop_reason is None:
                self._request_stop(sig.name.lower())
            elif self.run is not None and not self.run.killed:
                # A second TERM/INT while waiting for a run's cleanup: stop waiting.
                self._kill_run(self.run, "second_signal")

    def _request_stop(self, reason: str) -> None:
        self._stop_reason = reason
        self._set_phase(Phase.STOPPING)
        run = self.run
        if run is None:
            self.notifier.stopping("stopping")
            self.log.info("stop_requested", reason=reason)
            return
        budget = self.config.cleanup_budget_s
        self.notifier.stopping(f"stopping: waiting up to {budget:g} s for run {run.run_id} to clean up")
        self.log.info("stop_requested", reason=reason, run=run.run_id, cleanup_budget_s=budget)
        # The run cleans up on SIGTERM (its children, its audit, results.json); forward the
        # signal to the run's supervisor only, which stops its own tree in one escalation.
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.pid, signal.SIGINT if reason == "sigint" else signal.SIGTERM)
        run.term_sent_at = self._clock()
        self._extend_stop_timeout()

    def _extend_stop_timeout(self) -> None:
        run = self.run
        if run is None or run.term_sent_at is None:
            return
        left = self._run_limit(run) - self._clock()
        self.notifier.extend_timeout(max(0.0, left) + budgets.STOP_MARGIN_S)
        self._extend_at = self._clock() + EXTEND_EVERY_S

    def reload(self) -> None:
        """SIGHUP: re-read the config; keep the old one, and say why, if the new one is unusable."""
        try:
            new = self._reload()
            check = budgets.check(new)
            if check.errors:
                raise ConfigError("; ".join(check.errors))
        except ConfigError as exc:
            self.metrics.reloads.labels(result="failed").inc()
            self.log.error("config_reload_failed", reason=str(exc), kept="previous configuration")
            return
        kept = [f for f in RESTART_ONLY_FIELDS if getattr(new, f) != getattr(self.config, f)]
        if kept:
            new = dataclasses.replace(new, **{f: getattr(self.config, f) for f in kept})
            self.log.warning("config_fields_need_restart", fields=kept)
        changed = self.config.changed(new)
        self.config = new
        self.metrics.reloads.labels(result="ok").inc()
        for warning in check.warnings:
            self.log.warning("budget_warning", warning=warning)
        if "interval_s" in changed and not new.probes:  # the one suite's grid is `interval`
            suite = next(iter(self.probes.values()))
            suite.probe = new.schedule[0]
            self.metrics.probe().interval.set(suite.probe.interval_s)
            if suite.last_slot is not None and self.run is None:
                self._schedule_after(suite)
        self.log.info("config_reloaded", changed=changed)

    # -- runs --------------------------------------------------------------------------------

    def _start_run(self, state: ProbeSchedule) -> None:
        assert state.next_slot is not None
        slot_at, cfg, probe = state.next_slot, self.config, state.probe
        run_id = runs.new_run_id()
        timeout_s = cfg.timeout_of(probe)
        argv = runs.probe_argv(cfg, probe, self.runs_dir, run_id)
        now = self._clock()
        state.last_slot, state.next_slot = slot_at, None
        state.last_index = state.next_index
        try:
            pid = runs.spawn(argv, runs.run_environment(self._environ, run_id))
        except OSError as exc:
            self.log.error("run_spawn_failed", run=run_id, argv=argv, error=str(exc))
            self._finish(
                state,
                runs.RunSummary(run_id, Outcome.ERROR, 127, 0.0, time.time(), reasons=["spawn_failed"]),
                time.time(),
            )
            return
        limit = now + timeout_s + cfg.cleanup_budget_s
        self.run = ActiveRun(run_id, probe.name, pid, slot_at, now, time.time(), limit)
        self.metrics.run_started(probe.name)
        self._write_metrics()
        self._set_phase(Phase.RUNNING)
        self.log.info(
            "run_spawned", run=run_id, probe=probe.name, child_pid=pid, slot=state.last_index,
            late_s=round(now - slot_at, 3),
        )  # fmt: skip

    def _run_limit(self, run: ActiveRun) -> float:
        # Stopped, a run gets the whole cleanup budget from the stop, wherever its own deadline was:
        # it is writing its verdict and report, and a KILL would lose them.
        if run.term_sent_at is not None:
            return run.term_sent_at + self.config.cleanup_budget_s
        return run.limit_at

    def _enforce_limits(self, run: ActiveRun) -> None:
        now = self._clock()
        if run.killed:
            return  # the SIGCHLD of its death is all we wait for now
        if run.term_sent_at is not None and now >= self._extend_at:
            self._extend_stop_timeout()
        if now >= self._run_limit(run):
            self._kill_run(run, "cleanup_budget_spent" if run.term_sent_at is not None else "run_overran")

    def _kill_run(self, run: ActiveRun, reason: str) -> None:
        """KILL the run's session (its supervisor and whatever stayed in its group); the tag
        audit after the reap finds the rest."""
        run.killed = True
        self.log.error("run_killed", run=run.run_id, child_pid=run.pid, reason=reason)
        processes.signal_group(run.pid, signal.SIGKILL)

    def _exited(self, exits: list[Exit]) -> None:
        for exit_ in exits:
            if self.run is not None and exit_.pid == self.run.pid:
                self.run.exit_code = exit_.exit_code
            elif self.render is not None and exit_.pid == self.render.pid:
                render, self.render = self.render, None
                self._render_exited(render, exit_.exit_code)
            else:
                self.log.info("orphan_reaped", child_pid=exit_.pid, exit_code=exit_.exit_code)
        if self.run is not None and self.run.exit_code is not None:
            run, self.run = self.run, None
            self._run_exited(run)

    def _run_exited(self, run: ActiveRun) -> None:
        assert run.exit_code is not None
        leaked = self._audit(run.run_id)
        summary = runs.summarize(
            run.run_id,
            self.runs_dir / run.run_id,
            run.exit_code,
            round(self._clock() - run.started_at, 3),
            leaked=leaked,
            overran=run.killed and run.term_sent_at is None,
        )
        self._finish(self.probes[run.probe], summary, run.started_unix)

    def _start_render(self) -> None:
        if self.render is not None:  # still at the last one: one more once it ends, so the page ends current
            self.render.again = True
            return
        try:
            pid = runs.spawn(index_argv(self.runs_dir), self._environ, quiet=True)
        except OSError as exc:
            self.log.warning("index_failed", reason="spawn_failed", error=str(exc))
            return
        self.render = IndexRender(pid, self._clock() + RENDER_TIMEOUT_S)

    def _bound_render(self) -> None:
        render = self.render
        if render is None or render.killed:
            return
        if self._clock() >= render.limit_at:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(render.pid, signal.SIGKILL)  # its own session: the renderer and anything it started
            render.killed = True

    def _render_exited(self, render: IndexRender, exit_code: int) -> None:
        if exit_code == 0:
            self.log.info("index_written", path=str(self.runs_dir / "index.html"))
        elif render.killed:
            self.log.warning("index_failed", reason="timeout", timeout_s=RENDER_TIMEOUT_S)
        else:
            self.log.warning("index_failed", reason="renderer_exit", exit_code=exit_code)
        if render.again:
            self._start_render()

    def _audit(self, run_id: str) -> int:
        """KILL and count every process still carrying the run's tag (the run itself is gone)."""
        leftovers = audit.kill_tagged(run_id, self.log, run=run_id)
        if leftovers:
            self._wait_until(KILL_WAIT_S, lambda: not any(processes.alive(p) for p in leftovers))
        return len(leftovers)

    def _finish(self, state: ProbeSchedule, summary: runs.RunSummary, started_unix: float) -> None:
        self.runs_done += 1
        metrics, run_dir = self.metrics.probe(state.probe.name), self.runs_dir / summary.run_id
        metrics.record_run(summary)
        state.last_run = runs.LastRun(
            summary.run_id, summary.outcome, tuple(summary.reasons), started_unix, summary.duration_s, run_dir
        )
        metrics.record_latencies(latency.measure(run_dir))
        try:
            runs.record_probe(run_dir, state.probe.name)
        except OSError as exc:
            self.log.error("probe_record_failed", run=summary.run_id, probe=state.probe.name, error=str(exc))
        fds, rss = self._resources()
        self.metrics.record_resources(fds, rss)
        self._write_metrics()
        deleted = self._apply_retention()
        # The history page after retention, so it links only runs still on disk (a child, bounded).
        self._start_render()
        self.log.log(
            logs.outcome_level(summary.outcome),
            "run_completed",
            run=summary.run_id,
            probe=state.probe.name,
            outcome=summary.outcome,
            exit_code=summary.exit_code,
            duration_s=summary.duration_s,
            leaked=summary.leaked,
            reasons=summary.reasons,
            results_found=summary.results_found,
            results_problem=summary.results_problem,
            tests=len(summary.tests),
            runs_done=self.runs_done,
            retention_deleted=len(deleted),
            daemon_fds=fds,
            daemon_rss_bytes=rss,
        )
        self._rotate_events()
        if self._stop_reason is None:
            self._schedule_after(state)
            self._set_phase(Phase.IDLE)
        self.notifier.status(self._status(summary))

    def _schedule_after(self, state: ProbeSchedule) -> None:
        """The probe's next slot after the one it just ran (its slot, not its start: a probe that
        waited for another's run keeps its grid, and the slots it missed are skipped)."""
        assert state.last_slot is not None
        interval = state.probe.interval_s
        slot = schedule.next_slot(state.last_slot, interval, self._clock())
        state.next_slot = slot.at
        state.next_index = state.last_index + 1 + slot.skipped
        if slot.skipped:
            self.metrics.probe(state.probe.name).slots_skipped.inc(slot.skipped)
            self._write_metrics()
            self.log.warning(
                "slot_skipped",
                probe=state.probe.name,
                skipped=slot.skipped,
                interval_s=interval,
                next_in_s=round(schedule.seconds_until(slot.at, self._clock()), 3),
            )

    # -- housekeeping --------------------------------------------------------------------------

    def _apply_retention(self) -> list[Any]:
        cfg = self.config
        protect = [self.run.run_id] if self.run is not None else []
        deleted = self.retention.apply(cfg.keep_runs, cfg.max_bytes, protect)
        if deleted:
            self.log.info(
                "runs_deleted",
                run_ids=[r.name for r in deleted],
                bytes=sum(r.size_bytes for r in deleted),
                keep_runs=cfg.keep_runs,
                max_bytes=cfg.max_bytes,
            )
        return deleted

    def _write_metrics(self) -> None:
        try:
            self.metrics.write_textfile(self.textfile)
        except OSError as exc:
            self.log.error("metrics_write_failed", path=str(self.textfile), error=str(exc))

    def _resources(self) -> tuple[int, int]:
        return len(os.listdir("/proc/self/fd")), int(self._me.memory_info().rss)

    def _rotate_events(self) -> None:
        path = self.config.state_dir / "canary-events.jsonl"
        try:
            if path.stat().st_size < EVENTS_MAX_BYTES:
                return
            path.replace(path.with_name(path.name + ".1"))
        except FileNotFoundError:
            return
        logs.configure("canary", None, path, level=self._log_level)
        self.log.info("events_rotated", path=str(path))

    def _set_phase(self, phase: Phase) -> None:
        if phase is not self.phase:
            self.phase = phase
            self.notifier.status(self._status())

    def _status(self, last: runs.RunSummary | None = None) -> str:
        if self.phase is Phase.RUNNING and self.run is not None:
            return f"running {self.run.run_id}"
        if self.phase is Phase.IDLE and (next_slot := self._next_slot()) is not None:
            wait = schedule.seconds_until(next_slot, self._clock())
            done = f"last {last.run_id} {last.outcome}; " if last is not None else ""
            return f"idle: {done}next run in {wait:.0f} s"
        return str(self.phase)
