"""The tests child's last act, however it ends (the suite finished, a stop, the deadline):
every unfinished job under the run's root is terminated, then confirmed ended.

Why a sweep of the root, not only of the ids the child holds:
- a LaunchJob that failed with `deadline_exceeded` or `unavailable` may still have created
  its job (the reply was lost, not the request); only a listing finds it;
- a task may have submitted jobs of its own (nested tests); they live under the root too.
`ControllerTarget.owns` (applied by the adapters to every listing and every TerminateJob)
keeps the sweep off anybody else's jobs.

Why poll after terminating: Iris marks a terminated job KILLED at once but stops its tasks
on a later tick (its worker reconciles); a job counts as confirmed only when it is
finished and every one of its tasks is too.

A controller known gone (`workers.controller.gone`: the run's own cluster refusing
connections, an embedded cluster's socket missing, as after the supervisor was SIGKILLed and
took the cluster with it) ends the sweep at once: `sweep_skipped{reason=controller_gone}`,
its jobs reported unconfirmed, instead of the whole budget spent retrying.

Time: the sweep has its own budget (`SuiteArgs.sweep_budget_s`), never the run's
deadline, which is gone when the deadline is what stopped us. It is cut short so that the
runtime's hard exit (the alarm, `workers.runtime`) still leaves TESTS_REPORT_S for the last
messages. Its calls go over a connection of their own whose deadline is the sweep's end,
so each call is capped by what is left of the budget.
"""

import enum
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.deadline import Deadline
from workers.child_args import TESTS_REPORT_S, SuiteArgs
from workers.controller.api import Controller, open_controller
from workers.controller.gone import gone_reason
from workers.controller.model import ControllerError, ErrorCode, Job, JobState, job_finished, task_finished
from workers.messages import JobsConfirmed
from workers.runtime import ChildContext

SWEEP_POLL_S = 0.2
# Even a sweep with no time left sends its TerminateJobs: a call that may land beats none.
MIN_SWEEP_S = 0.05


class SweepSkip(enum.StrEnum):
    """Why a sweep ended before its jobs were confirmed and before its budget ran out."""

    CONTROLLER_GONE = "controller_gone"


@dataclass
class JobSweep:
    """What the sweep knows of each job of the run: its last state, and what it did to it."""

    controller: Controller
    ends: Deadline
    states: dict[str, JobState]
    log: Any
    jobs: dict[str, Job] = field(default_factory=dict)
    terminated: set[str] = field(default_factory=set)
    confirmed: set[str] = field(default_factory=set)
    # A call of the last round failed `unavailable`: worth asking whether the controller is gone.
    unavailable: bool = False

    def round(self) -> bool:
        """List, terminate what is unfinished, check the tasks of what has finished; True when all are confirmed."""
        self.unavailable = False
        self._list()
        self._terminate([j for j, s in sorted(self.states.items()) if not job_finished(s) and j not in self.terminated])
        for job_id in sorted(j for j, s in self.states.items() if job_finished(s) and j not in self.confirmed):
            if self._tasks_ended(job_id):
                self.confirmed.add(job_id)
        return self.confirmed >= set(self.states)

    def _list(self) -> None:
        try:
            listing = self.controller.list_jobs()
        except ControllerError as exc:
            self.log.warning("sweep_list_failed", code=exc.code, details=exc.details)
            self._failed(exc.code)
            return
        listed = {j.job_id: j for j in listing}
        # A job we launched that the controller no longer lists cannot be running.
        self.confirmed |= {j for j in self.states if j not in listed}
        self.jobs.update(listed)
        self.states.update((j, job.state) for j, job in listed.items())

    def _terminate(self, job_ids: list[str]) -> None:
        if not job_ids:
            return
        for job_id, error in self.controller.terminate(job_ids, max(MIN_SWEEP_S, self.ends.remaining())).items():
            if error is None:
                self.terminated.add(job_id)
                self.log.info("job_terminated", job=job_id)
            elif error.code is ErrorCode.NOT_FOUND:
                self.confirmed.add(job_id)  # gone from the controller between its listing and our call
            else:
                self.log.warning("job_terminate_failed", job=job_id, code=error.code, details=error.details)
                self._failed(error.code)

    def _tasks_ended(self, job_id: str) -> bool:
        try:
            return all(task_finished(t.state) for t in self.controller.list_tasks(job_id))
        except ControllerError as exc:
            self.log.warning("sweep_list_tasks_failed", job=job_id, code=exc.code, details=exc.details)
            self._failed(exc.code)
            return False

    def _failed(self, code: ErrorCode) -> None:
        self.unavailable |= code is ErrorCode.UNAVAILABLE

    @property
    def unconfirmed(self) -> list[str]:
        return sorted(set(self.states) - self.confirmed)


def sweep(ctx: ChildContext, known: Mapping[str, JobState]) -> JobSweep:
    """Terminate every unfinished job of the run and poll until each (tasks included) has ended,
    within the sweep's budget. `known`: the jobs the child launched or listed, by last state."""
    args: SuiteArgs = ctx.args
    ends = ctx.cleanup_budget(args.sweep_budget_s, reserve_s=TESTS_REPORT_S, floor_s=MIN_SWEEP_S)
    with open_controller(args.target, ends, args.call_limit_s) as controller:
        state = JobSweep(controller, ends, {j: s for j, s in known.items() if args.target.owns(j)}, ctx.log)
        while not state.round() and not ends.expired():
            gone = gone_reason(args.target, args.cluster_owned) if state.unavailable else ""
            if gone:
                ctx.log.warning("sweep_skipped", reason=SweepSkip.CONTROLLER_GONE, detail=gone,
                                unconfirmed=len(state.unconfirmed))  # fmt: skip
                break
            time.sleep(ends.cap(SWEEP_POLL_S))
    return state


def report(ctx: ChildContext, done: JobSweep, started: float) -> None:
    """One event and one message: how many jobs were terminated, how many confirmed ended, which not."""
    unconfirmed = done.unconfirmed
    summary = {"terminated": len(done.terminated), "confirmed": len(done.confirmed), "unconfirmed": unconfirmed}
    level = logging.ERROR if unconfirmed else logging.INFO
    ctx.log.log(level, "jobs_confirmed", **summary, duration_s=round(time.monotonic() - started, 3))
    ctx.channel.send(JobsConfirmed(len(done.terminated), len(done.confirmed), tuple(unconfirmed)))


def known_states(jobs: Mapping[str, Job], launched: Iterable[str]) -> dict[str, JobState]:
    """The jobs the child launched (state unknown until listed) and every job it listed."""
    states = dict.fromkeys(launched, JobState.UNSPECIFIED)
    states.update((j, job.state) for j, job in jobs.items())
    return states
