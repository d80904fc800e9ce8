"""The diagnostics child: one look at the cluster before teardown, for the people reading a failure.

args: `workers.child_args.DiagnosticsArgs` (target, out_dir).

It asks, once, for the autoscaler's status, the table of this run's jobs (states and
pending reasons) and the last lines of every failed task, writes it all to
`<out_dir>/diagnostics.json` (a temporary file renamed into place, so a reader never sees
half a file) and sends a compact copy as one RESULT (`diagnostics=`), trimmed to stay far
below the message size limit. A failed RPC leaves its part empty and is named in `errors`;
whatever could be gathered is still written.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import orjson

from common.child_exit import ChildExit
from common.files import write_atomically
from common.jsonshape import JsonObject, from_json, to_json, to_json_object
from workers.child_args import DiagnosticsArgs
from workers.controller import polling
from workers.controller.api import Controller
from workers.controller.model import FAILED_TASK_STATES, Action, ControllerError, JobState, TaskState
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


@dataclass(frozen=True)
class JobRow:
    """One of this run's jobs, as diagnostics.json lists it."""

    job_id: str
    name: str
    state: JobState
    pending_reason: str
    error: str
    exit_code: int
    task_state_counts: dict[str, int]
    submitted_at: str | None
    finished_at: str | None


@dataclass(frozen=True)
class FailedTask:
    job_id: str
    task: int
    state: TaskState
    worker_id: str
    exit_code: int
    error: str
    lines: tuple[str, ...]  # the task's last lines, each cut to MAX_LINE_CHARS


@dataclass(frozen=True)
class Report:
    """diagnostics.json (serialised with common.jsonshape)."""

    timestamp: str
    jobs: tuple[JobRow, ...]
    autoscaler: JsonObject  # the monitor's record of one reply (monitors.autoscaler), all its actions
    failed_tasks: tuple[FailedTask, ...]
    errors: tuple[str, ...]


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

    def autoscaler(self) -> JsonObject:
        status = self._call("GetAutoscalerStatus", self.controller.autoscaler)
        if status is None:
            return {}
        record = status_record(status, new_actions=[])
        del record["new_actions"]
        record["recent_actions"] = [action_record(a) for a in status.actions]
        return record

    def jobs(self) -> tuple[JobRow, ...]:
        listing = self._call("ListJobs", self.controller.list_jobs)
        return tuple(
            JobRow(
                j.job_id,
                j.name,
                j.state,
                j.pending_reason,
                j.error,
                j.exit_code,
                dict(j.task_state_counts),
                j.submitted_at,
                j.finished_at,
            )
            for j in listing or []
        )

    def failed_tasks(self, jobs: Sequence[JobRow]) -> tuple[FailedTask, ...]:
        found: list[FailedTask] = []
        for job in jobs:
            if job.state == JobState.SUCCEEDED or len(found) >= MAX_FAILED_TASKS:
                continue
            tasks = self._call("ListTasks", self.controller.list_tasks, job.job_id) or []
            for task in tasks:
                if task.state not in FAILED_TASK_STATES or len(found) >= MAX_FAILED_TASKS:
                    continue
                index = task.task_index
                lines = self._call("GetTaskLogs", self.controller.task_log_tail, job.job_id, index, LOG_TAIL_LINES)
                found.append(FailedTask(job.job_id, index, task.state, task.worker_id, task.exit_code, task.error,
                                        tuple(line[:MAX_LINE_CHARS] for line in lines or [])))  # fmt: skip
        return tuple(found)


def compact(report: Report) -> JsonObject:
    """The report for the message: lists cut, then log lines cut, until it fits."""
    autoscaler = dict(report.autoscaler)
    actions = autoscaler.get("recent_actions")
    if isinstance(actions, list):
        autoscaler["recent_actions"] = actions[-MAX_MESSAGE_ACTIONS:]
    small = replace(report, jobs=report.jobs[:MAX_MESSAGE_JOBS], autoscaler=autoscaler)
    truncated = small.jobs != report.jobs or autoscaler != report.autoscaler
    keep_lines = LOG_TAIL_LINES
    while len(orjson.dumps(to_json(small))) > MAX_MESSAGE_BYTES and keep_lines > 0:
        keep_lines //= 2
        cut = tuple(replace(t, lines=t.lines[-keep_lines:] if keep_lines else ()) for t in report.failed_tasks)
        small, truncated = replace(small, failed_tasks=cut), True
    out = to_json_object(small) | {"truncated": truncated}
    if len(orjson.dumps(out)) > MAX_MESSAGE_BYTES:
        out = {"jobs": to_json(small.jobs[:20]), "autoscaler": {}, "failed_tasks": [], "truncated": True}
    return out


def _recent_actions(small: JsonObject) -> tuple[Action, ...]:
    """The autoscaler actions the compacted report kept (none when it had to drop them), read back
    into the type `action_record` wrote them from."""
    kept = small["autoscaler"]
    actions = kept.get("recent_actions") if isinstance(kept, dict) else None
    return tuple(from_json(Action, a) for a in actions) if isinstance(actions, list) else ()


def main(ctx: ChildContext) -> int:
    args: DiagnosticsArgs = ctx.args
    out_dir = args.out_dir
    with polling.connect(ctx) as controller:
        ctx.channel.send(Ready())
        gather = Diagnostics(ctx, controller)
        jobs = gather.jobs()
        timestamp, autoscaler = utc_now(), gather.autoscaler()
        failed = gather.failed_tasks(jobs)
    report = Report(timestamp, jobs, autoscaler, failed, tuple(gather.errors))
    path = out_dir / "diagnostics.json"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(path, orjson.dumps(to_json(report), option=orjson.OPT_INDENT_2))
    except OSError as exc:
        ctx.log.error("diagnostics_write_failed", path=str(path), error=str(exc))
        path_text = ""
    else:
        path_text = str(path)
    small = compact(report)
    ctx.channel.send(DiagnosticsResult(small, path_text, tuple(gather.errors), _recent_actions(small)))
    ctx.log.info("diagnostics_written", path=path_text, jobs=len(jobs), failed_tasks=len(report.failed_tasks))
    return ChildExit.OK
