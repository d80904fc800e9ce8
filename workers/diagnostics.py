"""The diagnostics child: one look at the cluster before teardown, for the people reading a failure.

args: `workers.child_args.DiagnosticsArgs` (target, out_dir).

It asks, once, for the autoscaler's status, the table of this run's jobs (states and
pending reasons) and the last lines of every failed task, writes it all to
`<out_dir>/diagnostics.json` (a temporary file renamed into place, so a reader never sees
half a file) and sends a compact copy as one RESULT (`diagnostics=`), trimmed to stay far
below the message size limit. A failed RPC leaves its part empty and is named in `errors`;
whatever could be gathered is still written.
"""

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from common.child_exit import ChildExit
from common.files import write_atomically
from workers.child_args import DiagnosticsArgs
from workers.controller import polling
from workers.controller.api import Controller
from workers.controller.model import FAILED_TASK_STATES, ControllerError, JobState
from workers.controller.timefmt import utc_now
from workers.messages import DiagnosticsResult, Ready
from workers.monitors.autoscaler import action_record, status_record
from workers.runtime import ChildContext

T = TypeVar("T")

LOG_TAIL_LINES = 50
MAX_FAILED_TASKS = 20
MAX_MESSAGE_JOBS = 100
MAX_MESSAGE_ACTIONS = 30
MAX_LINE_CHARS = 300
# The supervisor refuses messages over 1 MiB; a summary that big would not help anyone.
MAX_MESSAGE_BYTES = 200_000


class Diagnostics:
    def __init__(self, ctx: ChildContext, controller: Controller) -> None:
        self.ctx = ctx
        self.controller = controller
        self.errors: list[str] = []
        self.outage = polling.outage_for(ctx)

    def _call(self, what: str, call: Callable[..., T], *args: Any) -> T | None:
        """One call; a failure is reported as every child reports one (an API mismatch reaches the verdict)."""
        try:
            return call(*args)
        except ControllerError as exc:
            polling.call_failed(self.ctx, self.outage, "diagnostics_rpc_failed", exc, rpc=what)
            self.errors.append(f"{what}: {exc.code}")
            return None

    def autoscaler(self) -> dict[str, Any]:
        status = self._call("GetAutoscalerStatus", self.controller.autoscaler)
        if status is None:
            return {}
        record = status_record(status, new_actions=[])
        del record["new_actions"]
        record["recent_actions"] = [action_record(a) for a in status.actions]
        return record

    def jobs(self) -> list[dict[str, Any]]:
        listing = self._call("ListJobs", self.controller.list_jobs)
        return [
            {
                "job_id": j.job_id,
                "name": j.name,
                "state": j.state,
                "pending_reason": j.pending_reason,
                "error": j.error,
                "exit_code": j.exit_code,
                "task_state_counts": dict(j.task_state_counts),
                "submitted_at": j.submitted_at,
                "finished_at": j.finished_at,
            }
            for j in listing or []
        ]

    def failed_tasks(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for job in jobs:
            if job["state"] == JobState.SUCCEEDED or len(found) >= MAX_FAILED_TASKS:
                continue
            job_id = str(job["job_id"])
            tasks = self._call("ListTasks", self.controller.list_tasks, job_id) or []
            for task in tasks:
                if task.state not in FAILED_TASK_STATES or len(found) >= MAX_FAILED_TASKS:
                    continue
                index = task.task_index
                lines = self._call("GetTaskLogs", self.controller.task_log_tail, job_id, index, LOG_TAIL_LINES)
                found.append({
                    "job_id": job_id, "task": index, "state": task.state,
                    "worker_id": task.worker_id, "exit_code": task.exit_code, "error": task.error,
                    "lines": [line[:MAX_LINE_CHARS] for line in lines or []],
                })  # fmt: skip
        return found


def compact(report: dict[str, Any]) -> dict[str, Any]:
    """The report for the message: lists cut, then log lines cut, until it fits."""
    small = dict(report)
    small["jobs"] = report["jobs"][:MAX_MESSAGE_JOBS]
    autoscaler = dict(report["autoscaler"])
    if "recent_actions" in autoscaler:
        autoscaler["recent_actions"] = autoscaler["recent_actions"][-MAX_MESSAGE_ACTIONS:]
    small["autoscaler"] = autoscaler
    small["truncated"] = small["jobs"] != report["jobs"] or autoscaler != report["autoscaler"]
    keep_lines = LOG_TAIL_LINES
    while len(orjson.dumps(small)) > MAX_MESSAGE_BYTES and keep_lines > 0:
        keep_lines //= 2
        small["failed_tasks"] = [
            t | {"lines": t["lines"][-keep_lines:] if keep_lines else []} for t in report["failed_tasks"]
        ]
        small["truncated"] = True
    if len(orjson.dumps(small)) > MAX_MESSAGE_BYTES:
        small = {"jobs": small["jobs"][:20], "autoscaler": {}, "failed_tasks": [], "truncated": True}
    return small


def main(ctx: ChildContext) -> int:
    args: DiagnosticsArgs = ctx.args
    out_dir = args.out_dir
    with polling.connect(ctx) as controller:
        ctx.channel.send(Ready())
        gather = Diagnostics(ctx, controller)
        jobs = gather.jobs()
        report = {
            "timestamp": utc_now(),
            "jobs": jobs,
            "autoscaler": gather.autoscaler(),
            "failed_tasks": gather.failed_tasks(jobs),
        }
    report["errors"] = gather.errors
    path = out_dir / "diagnostics.json"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(path, orjson.dumps(report, option=orjson.OPT_INDENT_2))
    except OSError as exc:
        ctx.log.error("diagnostics_write_failed", path=str(path), error=str(exc))
        path_text = ""
    else:
        path_text = str(path)
    small = compact(report)
    actions = tuple(small["autoscaler"].get("recent_actions", []))
    ctx.channel.send(DiagnosticsResult(small, path_text, tuple(gather.errors), actions))
    ctx.log.info("diagnostics_written", path=path_text, jobs=len(jobs), failed_tasks=len(report["failed_tasks"]))
    return ChildExit.OK
