"""What happened when, read back from a run directory: the data of the report's timeline.

Everything comes from files the run already wrote: phases from `events.jsonl`, each
job's submission from its `job_launched` event and its tasks' states from the
`scheduling.jsonl` snapshots, scale-ups and slice boots from `autoscaler.jsonl`, and
line rates from the stream files' receive timestamps. A missing or half-written file
(a run killed mid-way) just leaves its rows empty.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

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


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file; a torn last line (a killed writer) is skipped."""
    try:
        handle = path.open("rb")
    except OSError:
        return
    with handle:
        for line in handle:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


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


def _phases(events: list[dict[str, Any]], end: float) -> tuple[Row, list[Mark]]:
    row, marks, open_at = Row("phases"), [], {}
    for event in events:
        name, at = event.get("phase"), parse_time(str(event.get("timestamp", "")))
        if name is None or at is None:
            continue
        if event.get("event") == "phase_started":
            open_at[name] = at
        elif event.get("event") == "phase_finished" and name in open_at:
            outcome = str(event.get("outcome", "ok"))
            row.spans.append(Span(name, open_at.pop(name), at, f"phase-{'ok' if outcome == 'ok' else 'bad'}", outcome))
            if outcome != "ok":
                marks.append(Mark(at, f"phase {name}: {outcome}", "failure"))
    row.spans += [Span(name, at, end, "phase-ok", "unfinished") for name, at in open_at.items()]
    return row, marks


def _task_states(scheduling: Path) -> dict[tuple[str, int], list[tuple[float, str]]]:
    """Each task's state changes, in order: (time first seen in a state, state)."""
    changes: dict[tuple[str, int], list[tuple[float, str]]] = {}
    for snapshot in read_jsonl(scheduling):
        at = parse_time(str(snapshot.get("timestamp", "")))
        if at is None:
            continue
        for job in snapshot.get("jobs") or []:
            for task in job.get("tasks") or []:
                seen = changes.setdefault((str(job.get("job_id")), int(task.get("task_index", 0))), [])
                state = str(task.get("state", ""))
                if not seen or seen[-1][1] != state:
                    seen.append((at, state))
    return changes


def _job_rows(run_dir: Path, events: list[dict[str, Any]], end: float) -> tuple[list[Row], list[Mark]]:
    submitted = {
        str(e["job"]): (str(e.get("name") or e.get("test", "")), parse_time(str(e.get("timestamp", ""))))
        for e in events
        if e.get("event") == "job_launched" and "job" in e
    }
    states = _task_states(run_dir / "scheduling.jsonl")
    jobs = sorted({job for job, _ in states} | set(submitted), key=lambda j: (submitted.get(j, ("", 0.0))[1] or 0.0, j))
    rows, failures = [], []
    for job in jobs:
        test, at = submitted.get(job, ("", None))
        tasks = sorted(i for j, i in states if j == job) or [0]
        for index in tasks:
            row = Row(f"{test or job} · task {index}")
            changes = states.get((job, index), [])
            if at is not None and (not changes or changes[0][0] > at):
                changes = [(at, "submitted"), *changes]
            for (t0, state), (t1, _) in zip(changes, [*changes[1:], (end, "")], strict=True):
                if state in TERMINAL_STATES:
                    row.marks.append(Mark(t0, state, "failure" if state in FAILED_STATES else "done"))
                    if state in FAILED_STATES:
                        failures.append(Mark(t0, f"{job} task {index}: {state}", "failure"))
                    break
                row.spans.append(Span(state, t0, t1, state or "unknown", f"{job} task {index}: {state}"))
            rows.append(row)
    return rows, failures


def _autoscaler_rows(path: Path, end: float) -> list[Row]:
    actions = Row("scale actions")
    boots: dict[str, list[float]] = {}  # slice -> [first seen, all hosts ready or nan, last seen]
    for snapshot in read_jsonl(path):
        at = parse_time(str(snapshot.get("timestamp", "")))
        if at is None:
            continue
        for action in snapshot.get("new_actions") or []:
            when = parse_time(str(action.get("timestamp", ""))) or at
            kind = str(action.get("action_type", "action"))
            label = f"{kind} {action.get('scale_group', '')} {action.get('slice_id', '')}".strip()
            actions.marks.append(Mark(when, label, kind if kind in ("scale_up", "scale_down") else "action"))
            if kind == "scale_up" and action.get("slice_id"):
                boots.setdefault(str(action["slice_id"]), [when, float("nan"), when])
        for group in snapshot.get("groups") or []:
            for slice_ in group.get("slices") or []:
                times = boots.setdefault(str(slice_.get("slice_id")), [at, float("nan"), at])
                times[2] = at
                vms = slice_.get("vms") or []
                if vms and times[1] != times[1] and all(vm.get("state") == "ready" for vm in vms):
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


def _stream_files(run_dir: Path) -> list[Path]:
    logs = run_dir / "logs"
    return sorted([*logs.glob("controller*.jsonl"), *(logs / "vms").glob("*.jsonl")])


def _line_rates(run_dir: Path, start: float, end: float) -> tuple[list[Rates], bool]:
    """Lines per second over the run, all streams together and the busiest ones alone."""
    width = max(end - start, 1e-3) / RATE_BUCKETS
    budget, sampled, per_stream = STREAM_READ_BUDGET_BYTES, False, []
    for path in _stream_files(run_dir):
        counts = [0.0] * RATE_BUCKETS
        try:
            with path.open("rb") as handle:
                data = handle.read(max(budget, 0))
                sampled = sampled or bool(handle.read(1))
        except OSError:
            continue
        budget -= len(data)
        for match in _RECEIVED.finditer(data):
            at = parse_time(match[1].decode("ascii", "replace"))
            if at is not None:
                counts[min(RATE_BUCKETS - 1, max(0, int((at - start) / width)))] += 1 / width
        per_stream.append(Rates(path.stem, counts))
    total = Rates("all streams", [sum(bucket) for bucket in zip(*(r.per_s for r in per_stream), strict=True)])
    busiest = sorted(per_stream, key=lambda r: -sum(r.per_s))[:MAX_STREAM_ROWS]
    return ([total, *busiest] if per_stream else []), sampled


def build(run_dir: Path, results: dict[str, Any]) -> Timeline:
    events = list(read_jsonl(run_dir / "events.jsonl"))
    times = [t for t in (parse_time(str(e.get("timestamp", ""))) for e in events) if t is not None]
    start = parse_time(str(results.get("started_at", ""))) or min(times, default=0.0)
    end = parse_time(str(results.get("finished_at", ""))) or max(times, default=start + 1.0)
    end = max(end, start + 1e-3)
    phases, failures = _phases(events, end)
    jobs, task_failures = _job_rows(run_dir, events, end)
    failures += task_failures
    failures += [
        Mark(at, f"{e.get('child', '')}: {e['event']}", "gap" if e["event"] == "stream_gap" else "failure")
        for e in events
        if e.get("level") == "error" or e.get("event") == "stream_gap"
        if (at := parse_time(str(e.get("timestamp", "")))) is not None
    ]
    rates, sampled = _line_rates(run_dir, start, end)
    return Timeline(
        start, end, phases, jobs, _autoscaler_rows(run_dir / "autoscaler.jsonl", end), rates, failures, sampled
    )
