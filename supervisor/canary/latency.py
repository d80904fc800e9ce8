"""Latencies a run's monitor files show: how long jobs waited to run, how long slices took to boot.

Read after the run from `scheduling.jsonl` and `autoscaler.jsonl` (snapshots every
monitor interval, so each latency is accurate to one interval: 0.25 s on a local cluster,
1 s elsewhere) and `results.json`'s diagnostics (the controller's own submission times).

- scheduling latency, per job: submitted -> the first snapshot where none of its tasks
  is pending any more (all running, or already past it).
- scale-up latency, per slice: the autoscaler's scale_up action -> the first snapshot
  where every VM of that slice is ready.

A job or slice that never got there is not measured: the run's failure says that, and a
latency that never ended has no value to put in a histogram.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from supervisor.canary.runs import read_results
from supervisor.run_files import RunDirError, jsonl_records

WAITING_TASK_STATES = frozenset({"pending", "unschedulable", ""})


@dataclass(frozen=True)
class RunLatencies:
    scheduling_s: dict[str, float] = field(default_factory=dict)  # job name -> seconds
    scale_up_s: dict[str, float] = field(default_factory=dict)  # slice id -> seconds


def _unix(timestamp: object) -> float | None:
    if not isinstance(timestamp, str):
        return None
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None


def _snapshots(path: Path) -> Iterator[tuple[float, dict[str, Any]]]:
    """The file's snapshots with their times, read as every run file is (`run_files`: capped, no
    symlink, no FIFO); a file that is not a run's stops the reading, and a latency not found is none."""
    try:
        for record in jsonl_records(path):
            at = _unix(record.value.get("timestamp"))
            if at is not None:
                yield at, record.value
    except RunDirError:
        return


def scheduling(run_dir: Path) -> dict[str, float]:
    results, _ = read_results(run_dir)
    jobs = results.smoke.diagnostics.get("jobs") if results and results.smoke else None
    listed = [j for j in jobs if isinstance(j, dict)] if isinstance(jobs, list) else []
    submitted = {name: _unix(j.get("submitted_at")) for j in listed if isinstance(name := j.get("name"), str)}
    first_seen: dict[str, float] = {}
    latency: dict[str, float] = {}
    for at, snapshot in _snapshots(run_dir / "scheduling.jsonl"):
        for job in snapshot.get("jobs", []):
            name, tasks = job.get("name"), job.get("tasks", [])
            if not isinstance(name, str) or name in latency:
                continue
            first_seen.setdefault(name, at)
            if tasks and not any(t.get("state") in WAITING_TASK_STATES for t in tasks):
                start = submitted.get(name) or first_seen[name]
                latency[name] = max(0.0, at - start)
    return latency


def scale_up(run_dir: Path) -> dict[str, float]:
    requested: dict[str, float] = {}
    latency: dict[str, float] = {}
    for at, snapshot in _snapshots(run_dir / "autoscaler.jsonl"):
        for action in snapshot.get("new_actions", []):
            when = _unix(action.get("timestamp"))
            if action.get("action_type") == "scale_up" and isinstance(action.get("slice_id"), str) and when:
                requested.setdefault(action["slice_id"], when)
        for group in snapshot.get("groups", []):
            for slice_ in group.get("slices", []):
                sid, vms = slice_.get("slice_id"), slice_.get("vms", [])
                if sid in requested and sid not in latency and vms and all(v.get("state") == "ready" for v in vms):
                    latency[sid] = max(0.0, at - requested[sid])
    return latency


def measure(run_dir: Path) -> RunLatencies:
    return RunLatencies(scheduling_s=scheduling(run_dir), scale_up_s=scale_up(run_dir))
