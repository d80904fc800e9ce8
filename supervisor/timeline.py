"""What happened when, read back from a run directory: the data of the report's timeline.

Everything comes from files the run already wrote: phases from `events.jsonl`, each
job's submission from its `job_launched` event and its tasks' states from the
`scheduling.jsonl` snapshots, scale-ups and slice boots from `autoscaler.jsonl`, and
line rates from the stream files' receive timestamps. A missing or half-written file
(a run killed mid-way) just leaves its rows empty; a file of the wrong shape, a FIFO or
a symlink is a RunDirError naming it (`run_files`: every file read back is untrusted).
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from supervisor.run_files import RunDirError, jsonl_records, open_regular
from supervisor.run_result import RunResult

TERMINAL_STATES = frozenset({"succeeded", "failed", "killed", "worker_failed", "unschedulable"})
FAILED_STATES = frozenset({"failed", "killed", "worker_failed", "unschedulable"})
RATE_BUCKETS = 60
MAX_STREAM_ROWS = 12
# Stream files can reach hundreds of MiB each; the rates are read from at most this much in
# all, so regenerating a report stays a matter of seconds on the largest runs.
STREAM_READ_BUDGET_BYTES = 64 << 20
_RECEIVED = re.compile(rb'"received":"([^"]+)"')


def parse_time(text: str) -> float | None:
    """Unix seconds of an RFC 3339 timestamp; nanosecond fractions are cut to microseconds."""
    match = re.fullmatch(r"(.{19})(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if match is None:
        return None
    zone = "+00:00" if match[3] == "Z" else match[3]
    try:
        whole = datetime.fromisoformat(match[1] + zone).timestamp()
    except ValueError:
        return None
    return whole + float("0." + (match[2] or "0"))


@dataclass
class Span:
    label: str
    start: float
    end: float
    kind: str  # a CSS class: phase-ok, pending, running, succeeded, failed, boot, ...
    title: str = ""


@dataclass
class Mark:
    at: float
    label: str
    kind: str  # scale_up, scale_down, failure, gap
    outcome: str = ""  # a task's terminal state, written beside its mark


@dataclass
class Row:
    label: str
    spans: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)


@dataclass
class Rates:
    label: str
    per_s: list[float]  # RATE_BUCKETS buckets over [start, end]


@dataclass
class Timeline:
    start: float
    end: float
    phases: Row
    jobs: list[Row]
    autoscaler: list[Row]
    rates: list[Rates]
    failures: list[Mark]
    rates_sampled: bool = False


@dataclass(frozen=True)
class Event:
    """What the timeline reads of one events.jsonl record (structlog's JSON: event, level, timestamp, ...)."""

    event: str
    at: float | None
    level: str
    phase: str = ""  # phase_started, phase_finished
    outcome: str = ""  # phase_finished
    job: str = ""  # job_launched
    name: str = ""  # job_launched: the job's name, else its test's
    child: str = ""  # error-level events and stream_gap


def _is_failure(event: Event) -> bool:
    return event.level == "error" or event.event == "stream_gap"


def read_events(path: Path) -> tuple[list[Event], list[float]]:
    """The events the timeline draws, and the first and last timestamp of all (empty if none)."""
    kept, first, last = [], float("inf"), float("-inf")
    for record in jsonl_records(path):
        text = record.at("event").required().as_text()
        at = parse_time(record.at("timestamp").as_text())
        if at is not None:
            first, last = min(first, at), max(last, at)
        event = Event(text, at, record.at("level").as_text())
        if text in ("phase_started", "phase_finished"):
            outcome = record.at("outcome").as_text() or "ok"
            kept.append(Event(text, at, event.level, phase=record.at("phase").required().as_text(), outcome=outcome))
        elif text == "job_launched" and record.at("job").present:
            name = record.at("name").as_text() or record.at("test").as_text()
            kept.append(Event(text, at, event.level, job=record.at("job").as_text(), name=name))
        elif _is_failure(event):
            kept.append(Event(text, at, event.level, child=record.at("child").as_text()))
    return kept, ([first, last] if first <= last else [])


def _phases(events: list[Event], end: float) -> tuple[Row, list[Mark]]:
    row, marks, open_at = Row("phases"), [], {}
    for event in events:
        name, at = event.phase, event.at
        if not name or at is None:
            continue
        if event.event == "phase_started":
            open_at[name] = at
        elif event.event == "phase_finished" and name in open_at:
            row.spans.append(Span(name, open_at.pop(name), at, f"phase-{'ok' if event.outcome == 'ok' else 'bad'}",
                                  event.outcome))  # fmt: skip
            if event.outcome != "ok":
                marks.append(Mark(at, f"phase {name}: {event.outcome}", "failure"))
    row.spans += [Span(name, at, end, "phase-ok", "unfinished") for name, at in open_at.items()]
    return row, marks


# The task states the picture has a colour for (and the legend explains); any other is `unknown`.
DRAWN_STATES = {"submitted": "submitted", "pending": "pending", "assigned": "assigned", "building": "assigned",
                "running": "running"}  # fmt: skip


@dataclass(frozen=True)
class TaskChange:
    """A task first seen in `state` at `at`: why it waited there and on which worker, as the snapshot said."""

    at: float
    state: str
    reason: str = ""
    worker: str = ""

    def describe(self, job: str, index: int) -> str:
        worker = f"; worker {self.worker}" if self.worker else ""
        reason = f"; pending reason: {self.reason}" if self.reason else ""
        return f"{job} task {index}: {self.state}{worker}{reason}"


def _task_states(scheduling: Path) -> dict[tuple[str, int], list[TaskChange]]:
    """Each task's changes of state or pending reason, in order, with the worker it was on."""
    changes: dict[tuple[str, int], list[TaskChange]] = {}
    for snapshot in jsonl_records(scheduling):
        at = parse_time(snapshot.at("timestamp").as_text())
        if at is None:
            continue
        for job in snapshot.at("jobs").as_list():
            job_id = job.at("job_id").as_text()
            for task in job.at("tasks").as_list():
                seen = changes.setdefault((job_id, task.at("task_index").as_count()), [])
                change = TaskChange(at, task.at("state").as_text(), task.at("pending_reason").as_text(),
                                    task.at("worker_id").as_text())  # fmt: skip
                if not seen or (seen[-1].state, seen[-1].reason) != (change.state, change.reason):
                    seen.append(change)
    return changes


def _job_rows(run_dir: Path, events: list[Event], end: float) -> tuple[list[Row], list[Mark]]:
    submitted = {e.job: (e.name, e.at) for e in events if e.event == "job_launched"}
    states = _task_states(run_dir / "scheduling.jsonl")
    jobs = sorted({job for job, _ in states} | set(submitted), key=lambda j: (submitted.get(j, ("", 0.0))[1] or 0.0, j))
    rows, failures = [], []
    for job in jobs:
        test, at = submitted.get(job, ("", None))
        tasks = sorted(i for j, i in states if j == job) or [0]
        for index in tasks:
            row = Row(f"{test or job} · task {index}")
            changes = states.get((job, index), [])
            if at is not None and (not changes or changes[0].at > at):
                changes = [TaskChange(at, "submitted"), *changes]
            for change, following in zip(changes, [*changes[1:], TaskChange(end, "")], strict=True):
                title = change.describe(job, index)
                if change.state in TERMINAL_STATES:
                    failed = change.state in FAILED_STATES
                    row.marks.append(Mark(change.at, title, "failure" if failed else "done", change.state))
                    if failed:
                        failures.append(Mark(change.at, title, "failure"))
                    break
                kind = DRAWN_STATES.get(change.state, "unknown")
                row.spans.append(Span(change.state, change.at, following.at, kind, title))
            rows.append(row)
    return rows, failures


def _autoscaler_rows(path: Path, end: float) -> list[Row]:
    actions = Row("scale actions")
    boots: dict[str, list[float]] = {}  # slice -> [first seen, all hosts ready or nan, last seen]
    for snapshot in jsonl_records(path):
        at = parse_time(snapshot.at("timestamp").as_text())
        if at is None:
            continue
        for action in snapshot.at("new_actions").as_list():
            when = parse_time(action.at("timestamp").as_text()) or at
            kind, slice_id = action.at("action_type").as_text() or "action", action.at("slice_id").as_text()
            label = f"{kind} {action.at('scale_group').as_text()} {slice_id}".strip()
            actions.marks.append(Mark(when, label, kind if kind in ("scale_up", "scale_down") else "action"))
            if kind == "scale_up" and slice_id:
                boots.setdefault(slice_id, [when, float("nan"), when])
        for group in snapshot.at("groups").as_list():
            for slice_ in group.at("slices").as_list():
                times = boots.setdefault(slice_.at("slice_id").as_text(), [at, float("nan"), at])
                times[2] = at
                states = [vm.at("state").as_text() for vm in slice_.at("vms").as_list()]
                if states and times[1] != times[1] and all(state == "ready" for state in states):
                    times[1] = at
    rows = [actions]
    for name, (first, ready, last) in sorted(boots.items(), key=lambda item: item[1][0]):
        row = Row(f"slice {name}")
        booted = ready == ready  # not NaN
        row.spans.append(Span("boot", first, ready if booted else last, "boot", f"{name}: booting"))
        if booted:
            row.spans.append(Span("ready", ready, max(last, ready), "ready", f"{name}: ready"))
        rows.append(row)
    return rows


def _plain_dir(path: Path) -> Path:
    """`path`, refused if it is a symlink: the stream files read are the run directory's own."""
    if path.is_symlink():
        raise RunDirError(f"{path}: is a symlink; a run directory holds plain files")
    return path


def _stream_files(run_dir: Path) -> list[Path]:
    logs = _plain_dir(run_dir / "logs")
    return sorted([*logs.glob("controller*.jsonl"), *_plain_dir(logs / "vms").glob("*.jsonl")])


def _line_rates(run_dir: Path, start: float, end: float) -> tuple[list[Rates], bool]:
    """Lines per second over the run, all streams together and the busiest ones alone."""
    width = max(end - start, 1e-3) / RATE_BUCKETS
    budget, sampled, per_stream = STREAM_READ_BUDGET_BYTES, False, []
    for path in _stream_files(run_dir):
        counts = [0.0] * RATE_BUCKETS
        handle = open_regular(path)
        if handle is None:
            continue
        with handle:
            data = handle.read(max(budget, 0))
            sampled = sampled or bool(handle.read(1))
        budget -= len(data)
        for match in _RECEIVED.finditer(data):
            at = parse_time(match[1].decode("ascii", "replace"))
            if at is not None:
                counts[min(RATE_BUCKETS - 1, max(0, int((at - start) / width)))] += 1 / width
        per_stream.append(Rates(path.stem, counts))
    total = Rates("all streams", [sum(bucket) for bucket in zip(*(r.per_s for r in per_stream), strict=True)])
    busiest = sorted(per_stream, key=lambda r: -sum(r.per_s))[:MAX_STREAM_ROWS]
    return ([total, *busiest] if per_stream else []), sampled


def build(run_dir: Path, results: RunResult) -> Timeline:
    events, span = read_events(run_dir / "events.jsonl")
    start = parse_time(results.started_at) or min(span, default=0.0)
    end = parse_time(results.finished_at) or max(span, default=start + 1.0)
    end = max(end, start + 1e-3)
    phases, failures = _phases(events, end)
    jobs, task_failures = _job_rows(run_dir, events, end)
    failures += task_failures
    failures += [
        Mark(e.at, f"{e.child}: {e.event}", "gap" if e.event == "stream_gap" else "failure")
        for e in events
        if _is_failure(e) and e.at is not None
    ]
    rates, sampled = _line_rates(run_dir, start, end)
    return Timeline(
        start, end, phases, jobs, _autoscaler_rows(run_dir / "autoscaler.jsonl", end), rates, failures, sampled
    )
