"""monitor:scheduling: where this run's tasks are and why they wait, as data and as events.

args: `workers.child_args.MonitorArgs` (target, out: scheduling.jsonl, interval_s).

Every poll lists this run's jobs (those under its job root) and their tasks, appends one snapshot
line to `out`, and logs each change: `job_state_changed`, and `task_state_changed` when
a task's state or its pending_reason changes (the live `pending_reason` operators asked
for: "waiting for slice local-tpu-1 to boot"). Tasks of a finished job are listed once
more after it finishes, so their final states are recorded, and then no longer polled.
"""

import time
from dataclasses import dataclass, field

from common.child_exit import ChildExit
from common.jsonshape import JsonObject
from workers.child_args import MonitorArgs
from workers.controller import polling
from workers.controller.api import Controller
from workers.controller.model import ControllerError, Job, JobState, Task, job_finished
from workers.controller.timefmt import utc_now
from workers.messages import MonitorReady, SchedulingProgress, SchedulingStats
from workers.monitors._jsonl import open_monitor_output
from workers.runtime import ChildContext

PROGRESS_EVERY_S = 10.0


@dataclass
class JobView:
    job_id: str
    name: str
    state: JobState | None = None  # None until first listed
    pending_reason: str = ""
    error: str = ""
    tasks: dict[int, JsonObject] = field(default_factory=dict)
    tasks_final: bool = False  # tasks listed after the job finished: nothing will change

    def as_record(self) -> JsonObject:
        return {
            "job_id": self.job_id,
            "name": self.name,
            "state": self.state,
            "pending_reason": self.pending_reason,
            "tasks": [self.tasks[i] for i in sorted(self.tasks)],
        }


def task_record(task: Task) -> JsonObject:
    return {
        "task_index": task.task_index,
        "state": task.state,
        "worker_id": task.worker_id,
        "pending_reason": task.pending_reason,
        "can_be_scheduled": task.can_be_scheduled,
        "attempts": task.attempts,
    }


class SchedulingMonitor:
    def __init__(self, ctx: ChildContext, controller: Controller) -> None:
        self.ctx = ctx
        self.controller = controller
        self.jobs: dict[str, JobView] = {}
        self.outage = polling.outage_for(ctx)

    def poll(self) -> bool:
        """One poll; False if the controller could not be asked (logged)."""
        try:
            listing = self.controller.list_jobs()
        except ControllerError as exc:
            polling.call_failed(self.ctx, self.outage, "scheduling_poll_failed", exc)
            return False
        polling.call_succeeded(self.ctx, self.outage)
        for job in listing:
            self._update_job(job)
            view = self.jobs[job.job_id]
            if not view.tasks_final:
                self._poll_tasks(view)
        return True

    def _update_job(self, job: Job) -> None:
        view = self.jobs.get(job.job_id)
        if view is None:
            view = self.jobs[job.job_id] = JobView(job.job_id, job.name)
        state = job.state
        if (state, job.pending_reason) != (view.state, view.pending_reason):
            self.ctx.log.info(
                "job_state_changed", job=job.job_id, old=view.state, new=state,
                pending_reason=job.pending_reason, error=job.error,
            )  # fmt: skip
        view.state, view.pending_reason, view.error = state, job.pending_reason, job.error

    def _poll_tasks(self, view: JobView) -> None:
        finished_before = view.state is not None and job_finished(view.state)
        try:
            tasks = self.controller.list_tasks(view.job_id)
        except ControllerError as exc:
            polling.call_failed(self.ctx, self.outage, "scheduling_poll_failed", exc, job=view.job_id)
            return
        for task in tasks:
            new = task_record(task)
            old = view.tasks.get(task.task_index)
            if old is None or (old["state"], old["pending_reason"]) != (new["state"], new["pending_reason"]):
                self.ctx.log.info(
                    "task_state_changed", job=view.job_id, task=task.task_index,
                    old=old["state"] if old else None, new=new["state"],
                    pending_reason=new["pending_reason"], worker=new["worker_id"],
                )  # fmt: skip
            view.tasks[task.task_index] = new
        # The job was already finished when we asked: these task states are final.
        view.tasks_final = finished_before

    def snapshot(self) -> JsonObject:
        return {
            "timestamp": utc_now(),
            "jobs": [view.as_record() for view in self.jobs.values()],
        }

    def counts(self) -> dict[str, int]:
        by_state: dict[str, int] = {}
        for view in self.jobs.values():
            for task in view.tasks.values():
                state = str(task["state"])  # orjson takes only plain str keys
                by_state[state] = by_state.get(state, 0) + 1
        return by_state


def main(ctx: ChildContext) -> int:
    args: MonitorArgs = ctx.args
    out = open_monitor_output(ctx)
    if out is None:
        return ChildExit.CONFIG
    ready = False
    next_progress = time.monotonic() + PROGRESS_EVERY_S
    with out, polling.connect(ctx) as controller:
        monitor = SchedulingMonitor(ctx, controller)
        for _ in polling.poll_every(ctx, args.interval_s):
            if not monitor.poll():
                continue
            out.write(monitor.snapshot())
            if not ready:
                ctx.channel.send(MonitorReady(str(out.path)))
                ready = True
            if time.monotonic() >= next_progress:
                ctx.channel.send(SchedulingProgress(len(monitor.jobs), monitor.counts(), out.records))
                next_progress = time.monotonic() + PROGRESS_EVERY_S
        ctx.channel.send(SchedulingStats(len(monitor.jobs), monitor.counts(), out.records))
    ctx.log.info("scheduling_monitor_stopped", reason=ctx.stop.reason or "deadline", lines=out.records)
    return ChildExit.OK
