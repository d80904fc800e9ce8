"""Checks on what the cluster did, from its own replies: where tasks ran, what the autoscaler refused."""

import datetime
from collections.abc import Mapping, Sequence

from workers.controller.model import AutoscalerStatus, Constraint, GroupStatus, JobRequest, Task, Worker

# Unmet-demand reasons that mean "never", not "wait": the embedded autoscaler's and Iris's words.
UNSATISFIABLE_MARKERS = ("no scale group", "unsatisfiable", "no group can")


def meets(constraint: Constraint, attributes: Mapping[str, str]) -> bool:
    present = constraint.key in attributes
    match constraint.op:
        case "eq":
            return present and attributes[constraint.key] == constraint.value
        case "ne":
            return not present or attributes[constraint.key] != constraint.value
        case "exists":
            return present
        case _:
            return not present


def placement_problem(tasks: Sequence[Task], workers: Mapping[str, Worker], constraints: Sequence[Constraint]) -> str:
    """Why a task's worker does not meet `constraints`, or "" when all do."""
    if not tasks:
        return "no task reported"
    for t in tasks:
        worker = workers.get(t.worker_id)
        if worker is None:
            return f"task {t.task_index} ran on {t.worker_id or 'no worker'}, which the controller no longer lists"
        for c in constraints:
            if not meets(c, worker.attributes):
                seen = worker.attributes.get(c.key, "<absent>")
                return (
                    f"task {t.task_index} ran on {t.worker_id} with {c.key}={seen}, violating {c.key} {c.op} {c.value}"
                )
    return ""


def _serves(group: GroupStatus, request: JobRequest) -> bool:
    if group.device != request.device or request.variant not in ("", group.variant):
        return False
    return all(c.key not in group.attributes or meets(c, group.attributes) for c in request.constraints)


def _after(timestamp: str | None, since_unix: float) -> bool:
    if not timestamp:
        return False
    return datetime.datetime.fromisoformat(timestamp).timestamp() >= since_unix


def refusal(status: AutoscalerStatus, requests: Sequence[JobRequest], job_id: str, since_unix: float) -> str:
    """The autoscaler's own reason why `job_id` will not be served, or "" while it may still be."""
    for u in status.unmet:
        if u.job_id.startswith(job_id) and any(m in u.reason.lower() for m in UNSATISFIABLE_MARKERS):
            return u.reason
    serving = {g.name for g in status.groups if any(_serves(g, r) for r in requests)}
    for a in status.actions:
        if a.failed and a.scale_group in serving and _after(a.timestamp, since_unix):
            return f"{a.action_type} in group {a.scale_group}: {a.reason}"
    return ""
