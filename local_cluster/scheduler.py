"""Placement of pending tasks on ready workers: plain Python, no clock, no I/O.

One pass looks at jobs in submission order and at a private copy of every worker's free
capacity, so the controller applies the result (or not) as one step. A coscheduled job
is placed whole or not at all: all of its tasks on the hosts that share its `group_by`
attribute value, task i on host i (by `tpu-worker-id`), because a multi-host TPU program
expects its ranks to match the hosts' order in the slice. Independent tasks go first-fit
on workers in name order, which keeps placement deterministic for tests and operators.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from common.states import TaskState
from local_cluster.fit import SLICE_KEY, device_matches, worker_eligible
from local_cluster.model import Job, Worker


@dataclass(frozen=True)
class Assignment:
    job_id: str
    task_index: int
    worker_id: str
    units: int
    cpu: int = 0


@dataclass(frozen=True)
class Blocked:
    """Tasks of one job this pass could not place, and why (for `pending_reason`)."""

    job_id: str
    task_indices: tuple[int, ...]
    reason: str


@dataclass
class SchedulingPass:
    assignments: list[Assignment] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)


def schedule(jobs: Sequence[Job], workers: Sequence[Worker]) -> SchedulingPass:
    free = {w.worker_id: w.free_units for w in workers}
    cpu = {w.worker_id: w.free_cpu for w in workers}
    ordered = sorted(workers, key=lambda w: w.worker_id)
    result = SchedulingPass()
    for job in jobs:
        pending = [t.index for t in job.tasks if t.state == TaskState.PENDING]
        if not pending:
            continue
        candidates = [w for w in ordered if worker_eligible(job.spec, w)]
        if job.coscheduled:
            placed = _place_coscheduled(job, pending, candidates, free, cpu)
        else:
            placed = _place_independent(job, pending, candidates, free, cpu)
        result.assignments.extend(placed)
        left = tuple(sorted(set(pending) - {a.task_index for a in placed}))
        if left:
            result.blocked.append(Blocked(job.job_id, left, _reason(job, len(left), ordered, candidates)))
    return result


def _place_independent(
    job: Job, pending: list[int], candidates: list[Worker], free: dict[str, int], cpu: dict[str, int]
) -> list[Assignment]:
    placed = []
    need = job.spec.cpu_millicores
    for index in pending:
        for worker in candidates:
            units = worker.units_for(job.spec.device)
            if free[worker.worker_id] >= units and cpu[worker.worker_id] >= need:
                free[worker.worker_id] -= units
                cpu[worker.worker_id] -= need
                placed.append(Assignment(job.job_id, index, worker.worker_id, units, need))
                break
    return placed


def _host_order(group: list[Worker], key: str) -> list[Worker] | None:
    """Hosts in task order; for slices, exactly hosts 0..n-1 of the slice, else None."""
    if key != SLICE_KEY:
        return sorted(group, key=lambda w: w.worker_id)
    by_index = {int(w.attributes.get("tpu-worker-id", "-1")): w for w in group}
    hosts = [by_index.get(i) for i in range(len(by_index))]
    return None if any(h is None for h in hosts) else [h for h in hosts if h is not None]


def _place_coscheduled(
    job: Job, pending: list[int], candidates: list[Worker], free: dict[str, int], cpu: dict[str, int]
) -> list[Assignment]:
    if len(pending) != len(job.tasks):
        return []  # placed whole or not at all; a partial job is never completed later
    groups: dict[str, list[Worker]] = defaultdict(list)
    for worker in candidates:
        if job.spec.group_by in worker.attributes:
            groups[worker.attributes[job.spec.group_by]].append(worker)
    for value in sorted(groups):
        hosts = _host_order(groups[value], job.spec.group_by)
        if hosts is None or len(hosts) < len(pending):
            continue
        chosen = hosts[: len(pending)]
        units = [h.units_for(job.spec.device) for h in chosen]
        need = job.spec.cpu_millicores
        if all(free[h.worker_id] >= u and cpu[h.worker_id] >= need for h, u in zip(chosen, units, strict=True)):
            for host, u in zip(chosen, units, strict=True):
                free[host.worker_id] -= u
                cpu[host.worker_id] -= need
            return [Assignment(job.job_id, i, h.worker_id, u, need)
                    for i, h, u in zip(pending, chosen, units, strict=True)]  # fmt: skip
    return []


def _reason(job: Job, left: int, workers: list[Worker], candidates: list[Worker]) -> str:
    spec = job.spec
    device = spec.device.describe()
    ready = [w for w in workers if w.healthy and w.schedulable and device_matches(spec.device, w)]
    if not ready:
        return f"no ready {device} worker"
    if not candidates:
        wanted = ", ".join(c.describe() for c in spec.constraints)
        return f"none of {len(ready)} ready {device} workers matches constraints {wanted}"
    need = spec.cpu_millicores
    most_free = max(candidates, key=lambda w: w.free_cpu)
    if need > most_free.free_cpu:
        # Iris's words for it ("Insufficient CPU"), with what a worker could give.
        return (f"insufficient cpu: a task needs {need} millicores, the most any of {len(candidates)} ready "
                f"{device} workers has free is {most_free.free_cpu} (of {most_free.cpu_millicores})")  # fmt: skip
    if job.coscheduled:
        return f"no {spec.group_by} group has {left} free {device} hosts ({len(candidates)} ready hosts busy)"
    return f"all {len(candidates)} ready {device} workers are busy ({left} tasks waiting)"
