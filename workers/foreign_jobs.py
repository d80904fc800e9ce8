"""Jobs on the run's own cluster that the run did not submit: `foreign_job`.

Rule: on an embedded cluster this run started (with or without `--keep`), every job
must be named under the run's job root (`<root>-<test>`); any other job was submitted by
someone else who could reach the controller, and it ran code as this user. Each one is
logged (`foreign_job`, a warning) and sent to the supervisor once, which fails the verdict
with `foreign_job`. An attached cluster is not checked: earlier runs' jobs and other runs
attached at the same time are normal there.

The check runs in the cluster child, every second while the run lasts and once
more when it is stopped (the cluster is stopped last, after the tests), so a job that
came and went between two polls is still listed: the controller keeps finished jobs.
"""

from workers.controller.grpc_api import EmbeddedController
from workers.controller.model import ControllerError
from workers.messages import ForeignJob, ForeignJobs
from workers.runtime import ChildContext


class ForeignJobWatch:
    def __init__(self, ctx: ChildContext, controller: EmbeddedController, job_root: str) -> None:
        self.ctx, self.controller = ctx, controller
        self.ours = f"{job_root}-"
        self.reported: set[str] = set()

    def check(self) -> None:
        try:
            jobs = self.controller.list_all_jobs()
        except ControllerError as exc:
            self.ctx.log.debug("foreign_job_check_failed", error=str(exc))
            return
        found: list[ForeignJob] = []
        for job in jobs:
            if job.name.startswith(self.ours) or job.job_id in self.reported:
                continue
            self.reported.add(job.job_id)
            found.append(ForeignJob(job.job_id, job.name, job.state, job.submitted_at))
            self.ctx.log.warning("foreign_job", job_id=job.job_id, name=job.name, state=job.state)
        if found:
            self.ctx.channel.send(ForeignJobs(tuple(found)))
