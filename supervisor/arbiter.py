"""The supervisor: a child table, one poll loop, one reaper, one deadline.

Design, in the order things happen:
- Start-up: the process becomes a child subreaper (so orphaned grandchildren come back
  to us instead of init) and installs record-only signal handlers that write to a pipe.
  It holds no gRPC object and starts no thread, which is what makes fork safe.
- Children are forked (`spawn.fork_child`); each gets a session of its own, a parent-death
  signal, the run tag, and the absolute deadline. They talk to us over one pipe each.
- The loop (`poll_once`) waits in the shared loop core (`supervisor.loop`) on one
  `poll()` over the signal pipe and every child's pipe, with a timeout that is the
  nearest of the deadline and the next restart. After every wake the core reaps (the
  only wait in this process), then children whose backoff expired are restarted.
- The deadline is checked on every wake; when it passes, or on SIGTERM/SIGINT, a stop is
  requested: the caller's loop ends and `shutdown()` stops every child with one
  escalation (`common.processes.escalate`), then audits that no process with the run tag is left.
"""

import contextlib
import errno
import importlib
import logging
import os
import random
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from common import logs, processes
from common.child_exit import ChildExit
from common.deadline import Clock, Deadline
from common.jsonshape import to_json_object
from common.messages import Kind, Message
from common.outcome import FailureReason
from supervisor import audit
from supervisor.audit import AuditReport
from supervisor.children import ChildRecord, ChildSpec, ChildState
from supervisor.loop import Loop
from supervisor.pipes import ChildPipes
from supervisor.reaper import Exit
from supervisor.restart import Action, decide
from supervisor.spawn import fork_child
from workers.runtime import Launch

# The audit's event says the counts; the leaked processes have their own events, grpc the verdict.
NOT_SAID = frozenset({"leaked_processes", "grpc_imported"})

STOP_GRACE_S = 2.0
# During a stop, descendants that are not our children do not wake us when they exit.
STOP_RECHECK_S = 0.05
# A child waiting to be restarted is a warning; one that gave up, an error.
_STATE_LEVELS = {ChildState.BACKOFF: logging.WARNING, ChildState.FAILED: logging.ERROR}


def own_grace_s(stop_grace_s: float) -> float:
    """A child's own hard-exit timer after a stop request: half the grace the supervisor gives it
    before SIGKILL, so a child that cleans up too slowly still exits (and says so) before that."""
    return stop_grace_s / 2


MessageHandler = Callable[[ChildRecord, Message], None]


@dataclass(frozen=True)
class StopReport:
    killed: int
    survivors: tuple[audit.Leftover, ...]


@dataclass
class ProcessCounts:
    spawned: int = 0
    reaped: int = 0
    orphans_reaped: int = 0


@dataclass
class Supervisor:
    run_id: str
    run_dir: Path
    deadline: Deadline
    stop_grace_s: float = STOP_GRACE_S
    log_level: str = "info"
    clock: Clock = time.monotonic
    rng: Callable[[], float] = random.random
    on_message: MessageHandler | None = None
    children: dict[str, ChildRecord] = field(default_factory=dict)
    counts: ProcessCounts = field(default_factory=ProcessCounts)
    stop_reason: FailureReason | None = None
    failures: list[FailureReason] = field(default_factory=list)
    # With run_id, the tag of every process of this run (common.env.RUN_INSTANCE).
    instance: str = field(default_factory=lambda: secrets.token_hex(8))

    def __post_init__(self) -> None:
        self._by_pid: dict[int, ChildRecord] = {}
        self.log = logs.get_logger()
        self._loop = Loop(self._handle_signals)
        self._pipes = ChildPipes(self._loop, self._pipe_readable, self.log)
        self._skip_grace = False

    def __enter__(self) -> "Supervisor":
        self._loop.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._pipes.close_all()
        self._loop.close()

    # -- children ---------------------------------------------------------------------

    def add(self, spec: ChildSpec) -> ChildRecord:
        if spec.name in self.children:
            raise ValueError(f"duplicate child name {spec.name!r}")
        record = ChildRecord(spec)
        self.children[spec.name] = record
        self._spawn(record)
        return record

    def _spawn(self, record: ChildRecord) -> None:
        spec = record.spec
        if spec.preload:
            _preload(spec.entrypoint)
        launch = Launch(
            name=spec.name,
            role=spec.role,
            entrypoint=spec.entrypoint,
            args=spec.args,
            run_id=self.run_id,
            run_instance=self.instance,
            run_dir=self.run_dir,
            deadline_at=self.deadline.at if spec.deadline_at is None else spec.deadline_at,
            parent_pid=os.getpid(),
            grace_s=own_grace_s(self._grace(spec)),
            log_level=self.log_level,
        )
        record.starts += 1
        record.restart_at = None
        try:
            pid, fd = fork_child(launch)
        except OSError as exc:
            self._spawn_failed(record, exc)
            return
        record.pid, record.started_at = pid, self.clock()
        record.reader = type(record.reader)()
        self._by_pid[pid] = record
        self._pipes.attach(record, fd)
        self.counts.spawned += 1
        self.log.info("child_started", child=spec.name, child_pid=pid, attempt=record.starts, child_role=spec.role)
        self._transition(record, ChildState.STARTING)

    def _spawn_failed(self, record: ChildRecord, exc: OSError) -> None:
        """No process, no pipe (EMFILE, EAGAIN, ENOMEM): a start that failed at once. The
        restart policy decides as for any failed start; a critical child fails the run."""
        record.started_at = self.clock()
        self.log.error(
            "child_spawn_failed", child=record.name, attempt=record.starts,
            errno=errno.errorcode.get(exc.errno or 0, str(exc.errno)), error=exc.strerror,
        )  # fmt: skip
        self._child_exited(record, ChildExit.SPAWN_FAILED)

    def respawn(self, record: ChildRecord) -> None:
        """Start a finished child again (a VM that left discovery and came back)."""
        if not record.finished:
            raise ValueError(f"child {record.name!r} is still {record.state}")
        record.history = type(record.history)()
        self._spawn(record)

    def _grace(self, spec: ChildSpec) -> float:
        return self.stop_grace_s if spec.stop_grace_s is None else spec.stop_grace_s

    def _transition(self, record: ChildRecord, state: ChildState, **fields: Any) -> None:
        if record.state is state:
            return
        previous, record.state = record.state, state
        level = _STATE_LEVELS.get(state, logging.INFO)
        self.log.log(level, "child_state_changed", child=record.name, old=previous, new=state, **fields)

    # -- the loop ---------------------------------------------------------------------

    def run_until(self, done: Callable[[], bool], tick: Callable[[], float | None] | None = None) -> None:
        """Serve children until `done()` or a stop is requested (signal, deadline, critical failure).

        `tick`, if given, runs first and after every wake and returns the seconds until it
        wants to run again (None: only on the next wake), so the caller's timers share the one poll.
        """
        next_tick = tick() if tick is not None else None
        while self.stop_reason is None and not done():
            self.poll_once(self._next_timeout(next_tick))
            if tick is not None:
                next_tick = tick()

    def serve(self, timeout_s: float, done: Callable[[], bool]) -> bool:
        """Serve children until `done()` for at most `timeout_s`, even after a stop was
        requested: for work that belongs to cleanup (diagnostics after a timeout)."""
        return self._wait(timeout_s, done, True)

    def _next_timeout(self, extra: float | None = None) -> float:
        now = self.clock()
        wakes = [self.deadline.remaining(), *([extra] if extra is not None else [])]
        wakes += [r.restart_at - now for r in self.children.values() if r.restart_at is not None]
        return max(0.0, min(wakes))

    def poll_once(self, timeout_s: float) -> None:
        exits = self._loop.poll_once(timeout_s)
        # The deadline before the exits: children that stopped themselves at it while this
        # process was wedged (SIGSTOP, a slow disk) exit 124 for the run's reason, and must
        # be judged as stopping, not as failing (a critical child would fail the run).
        if self.stop_reason is None and self.deadline.expired():
            self.request_stop(FailureReason.DEADLINE_EXCEEDED)
        self._exited(exits)
        if self.stop_reason is None:
            self._restart_due()

    def request_stop(self, reason: FailureReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.log.warning("stop_requested", reason=reason, remaining_s=round(self.deadline.remaining(), 3))

    def _handle_signals(self, received: Iterable[signal.Signals]) -> None:
        for sig in received:
            self.log.info("signal_received", signal=sig.name)
            if sig is signal.SIGINT and self.stop_reason is not None:
                self._skip_grace = True
                self.log.warning("grace_skipped", signal=sig.name)
            if sig is signal.SIGTERM:
                self.request_stop(FailureReason.SIGTERM)
            elif sig is signal.SIGINT:
                self.request_stop(FailureReason.SIGINT)

    # -- messages ---------------------------------------------------------------------

    def _pipe_readable(self, fd: int) -> None:
        self._handle(self._pipes.read(fd))

    def _handle(self, messages: Iterable[tuple[ChildRecord, Message]]) -> None:
        for record, message in messages:
            record.last[message.kind] = message
            if message.kind is Kind.READY and record.state is ChildState.STARTING:
                self._transition(record, ChildState.RUNNING)
            if self.on_message is not None:
                self.on_message(record, message)

    # -- exits and restarts -----------------------------------------------------------

    def _exited(self, exits: Iterable[Exit]) -> None:
        for exit_ in exits:
            record = self._by_pid.pop(exit_.pid, None)
            if record is None:
                self.counts.orphans_reaped += 1
                self.log.info("orphan_reaped", child_pid=exit_.pid, exit_code=exit_.exit_code)
                continue
            self.counts.reaped += 1
            self._handle(self._pipes.read_remaining(record))
            self._child_exited(record, exit_.exit_code)

    def _child_exited(self, record: ChildRecord, exit_code: int) -> None:
        now = self.clock()
        record.pid, record.exit_code = None, exit_code
        expected = exit_code == 0 or record.state is ChildState.STOPPING or self.stop_reason is not None
        self.log.log(
            logging.INFO if expected else logging.WARNING,
            "child_exited",
            child=record.name,
            exit_code=exit_code,
            reason=ChildExit.describe(exit_code) if exit_code >= 0 else signal.Signals(-exit_code).name,
            uptime_s=round(now - record.started_at, 3),
        )
        if record.state is ChildState.STOPPING or self.stop_reason is not None:
            self._transition(record, ChildState.EXITED)
            return
        decision = decide(
            record.spec.restart,
            record.history,
            now=now,
            uptime_s=now - record.started_at,
            exit_code=exit_code,
            rng=self.rng,
        )
        if decision.action is Action.RESTART:
            record.restart_at = now + decision.delay_s
            self._transition(record, ChildState.BACKOFF, delay_s=round(decision.delay_s, 3))
        elif decision.action is Action.GIVE_UP:
            self._transition(record, ChildState.FAILED, failures=len(record.history.times))
            if record.spec.critical:
                self.failures.append(FailureReason.CRITICAL_CHILD_FAILED)
                self.request_stop(FailureReason.CRITICAL_CHILD_FAILED)
        else:
            self._transition(record, ChildState.EXITED)

    def _restart_due(self) -> None:
        now = self.clock()
        for record in self.children.values():
            if record.state is ChildState.BACKOFF and record.restart_at is not None and record.restart_at <= now:
                self._spawn(record)

    # -- stopping ---------------------------------------------------------------------

    def _wait(self, timeout_s: float, done: Callable[[], bool], interruptible: bool) -> bool:
        end = self.clock() + timeout_s
        while not done():
            left = end - self.clock()
            if left <= 0 or (interruptible and self._skip_grace):
                return False
            self.poll_once(min(left, STOP_RECHECK_S))
        return True

    def drain(self, records: Iterable[ChildRecord], budget_s: float) -> list[ChildRecord]:
        """Ask children to finish what is in flight and exit (SIGUSR1); serve them for up to
        `budget_s`; return those still running, for the caller to stop."""
        live = [r for r in records if r.alive]
        for record in live:
            self._transition(record, ChildState.STOPPING, reason="drain")
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGUSR1)  # type: ignore[arg-type]
        started = self.clock()
        self.serve(budget_s, lambda: not any(r.alive for r in live))
        remaining = [r for r in live if r.alive]
        self.log.info("children_drained", targets=len(live), remaining=len(remaining),
                      duration_s=round(self.clock() - started, 3))  # fmt: skip
        return remaining

    def stop_children(self, records: Iterable[ChildRecord], grace_s: float | None = None) -> StopReport:
        """Stop some children, and everything under them, with one escalation."""
        records = list(records)
        wanted = {r.pid for r in records if r.alive}
        snapshot = [p for p in audit.descendants() if p.pid in wanted or _has_ancestor(p, wanted)]
        return self._escalate(records, snapshot, grace_s)

    def shutdown(self) -> AuditReport:
        """Stop every child and adopted orphan, then audit that nothing of the run is left."""
        records = [r for r in self.children.values() if not r.finished]
        return self._audit(self._escalate(records, audit.descendants()))

    def _escalate(
        self, records: list[ChildRecord], snapshot: list[psutil.Process], grace_s: float | None = None
    ) -> StopReport:
        live = [r for r in records if r.alive]
        if grace_s is None:
            grace_s = max((self._grace(r.spec) for r in live), default=self.stop_grace_s)
        for record in records:
            record.restart_at = None
            self._transition(record, ChildState.STOPPING if record.alive else ChildState.EXITED)
        groups = [r.pid for r in live if r.pid is not None]  # each child leads its own group
        started = self.clock()
        done = processes.escalate(
            groups, snapshot, grace_s=grace_s, wait=self._wait, gone=lambda: not any(r.alive for r in live)
        )
        # Said now: a survivor may yet go before the audit, and its command line with it.
        report = StopReport(done.killed, tuple(audit.Leftover.of(p) for p in done.survivors))
        self.log.info(
            "children_stopped",
            targets=len(groups),
            killed=report.killed,
            survivors=len(report.survivors),
            duration_s=round(self.clock() - started, 3),
        )
        return report

    def _audit(self, stop: StopReport) -> AuditReport:
        leftovers = audit.kill_tagged(self.run_id, self.log, instance=self.instance)
        leaked = tuple(leftovers.values()) + stop.survivors
        self._wait(processes.KILL_WAIT_S, lambda: not any(processes.alive(p) for p in leftovers), False)
        self._exited(self._loop.reap())
        zombies = len(audit.zombie_children())
        if leaked:
            self.failures.append(FailureReason.PROCESS_LEAK)
        if zombies:
            self.failures.append(FailureReason.ZOMBIE_LEFT)
        report = AuditReport(
            self.counts.spawned, self.counts.reaped, self.counts.orphans_reaped, stop.killed, leaked, zombies
        )
        level = logging.ERROR if leaked or zombies else logging.INFO
        said = to_json_object(report.processes(grpc_imported=False))
        self.log.log(level, "process_audit", **{k: v for k, v in said.items() if k not in NOT_SAID})
        return report


class ForkSafetyError(RuntimeError):
    """The supervisor was about to hold gRPC state across a fork."""


def _preload(entrypoint: str) -> None:
    importlib.import_module(entrypoint.partition(":")[0])
    if "grpc" in sys.modules:
        raise ForkSafetyError(f"preloading {entrypoint} imported grpc; it must be imported in the child")


def _has_ancestor(proc: psutil.Process, pids: set[int | None]) -> bool:
    try:
        return any(parent.pid in pids for parent in proc.parents())
    except psutil.NoSuchProcess:
        return False
