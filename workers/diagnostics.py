"""The diagnostics child: one look at the cluster before teardown, for the people reading a failure.

args: controller, job_prefix, out_dir.

It asks, once, for the autoscaler's status, the table of this run's jobs (states and
pending reasons) and the last lines of every failed task, writes it all to
`<out_dir>/diagnostics.json` (a temporary file renamed into place, so a reader never sees
half a file) and sends a compact copy as one RESULT (`diagnostics=`), trimmed to stay far
below the message size limit. A failed RPC leaves its part empty and is named in `errors`;
whatever could be gathered is still written.
"""

from pathlib import Path
from typing import Any

import grpc
import orjson

from common.child_exit import ChildExit
from common.files import write_atomically
from common.messages import Kind
from iris_smoke_api.v1 import controller_pb2 as pb
from workers import controller_client as cc
from workers.monitors.autoscaler import action_record, status_record
from workers.runtime import ChildContext

LOG_TAIL_LINES = 50
MAX_FAILED_TASKS = 20
MAX_MESSAGE_JOBS = 100
MAX_MESSAGE_ACTIONS = 30
MAX_LINE_CHARS = 300
# The supervisor refuses messages over 1 MiB; a summary that big would not help anyone.
MAX_MESSAGE_BYTES = 200_000

FAILED_TASK_STATES = (cc.TaskState.FAILED, cc.TaskState.WORKER_FAILED)


class Diagnostics:
    def __init__(self, ctx: ChildContext, stub: cc.Stub) -> None:
        self.ctx = ctx
        self.stub = stub
        self.errors: list[str] = []

    def _call(self, what: str, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=cc.rpc_timeout(self.ctx.deadline))
        except grpc.RpcError as exc:
            code = cc.status_code(exc)
            self.ctx.log.warning("diagnostics_rpc_failed", rpc=what, code=code, details=cc.status_details(exc))
            self.errors.append(f"{what}: {code}")
            return None

    def autoscaler(self) -> dict[str, Any]:
        reply = self._call("GetAutoscalerStatus", self.stub.GetAutoscalerStatus, pb.GetAutoscalerStatusRequest())
        if reply is None:
            return {}
        record = status_record(reply, new_actions=[])
        del record["new_actions"]
        record["recent_actions"] = [action_record(a) for a in reply.recent_actions]
        return record

    def jobs(self, prefix: str) -> list[dict[str, Any]]:
        reply = self._call("ListJobs", self.stub.ListJobs, pb.ListJobsRequest(name_prefix=prefix))
        if reply is None:
            return []
        return [
            {
                "job_id": j.job_id,
                "name": j.name,
                "state": cc.JobState.of(j.state),
                "pending_reason": j.pending_reason,
                "error": j.error,
                "exit_code": j.exit_code,
                "task_state_counts": dict(j.task_state_counts),
                "submitted_at": cc.rfc3339(j.submitted_at),
                "finished_at": cc.rfc3339(j.finished_at),
            }
            for j in reply.jobs
        ]

    def failed_tasks(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for job in jobs:
            if job["state"] == cc.JobState.SUCCEEDED or len(found) >= MAX_FAILED_TASKS:
                continue
            reply = self._call("ListTasks", self.stub.ListTasks, pb.ListTasksRequest(job_id=job["job_id"]))
            for task in reply.tasks if reply is not None else []:
                if cc.TaskState.of(task.state) not in FAILED_TASK_STATES or len(found) >= MAX_FAILED_TASKS:
                    continue
                request = pb.GetTaskLogsRequest(job_id=job["job_id"], task_index=task.task_index, limit=LOG_TAIL_LINES)
                logs = self._call("GetTaskLogs", self.stub.GetTaskLogs, request)
                found.append({
                    "job_id": job["job_id"], "task": task.task_index, "state": cc.TaskState.of(task.state),
                    "worker_id": task.worker_id, "exit_code": task.exit_code, "error": task.error,
                    "lines": [line.data[:MAX_LINE_CHARS] for line in logs.lines] if logs is not None else [],
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
    out_dir = Path(ctx.args["out_dir"])
    with cc.connect(str(ctx.args["controller"])) as conn:
        ctx.channel.send(Kind.READY)
        gather = Diagnostics(ctx, conn.stub)
        jobs = gather.jobs(str(ctx.args["job_prefix"]))
        report = {
            "timestamp": cc.utc_now(),
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
    ctx.channel.send(Kind.RESULT, diagnostics=compact(report), path=path_text, errors=gather.errors)
    ctx.log.info("diagnostics_written", path=path_text, jobs=len(jobs), failed_tasks=len(report["failed_tasks"]))
    return ChildExit.OK
