"""A job's state follows its tasks' states; these functions are the only writers of both.

- any task FAILED or WORKER_FAILED fails the job the same way, and its other unfinished
  tasks end as COSCHED_FAILED (coscheduled: one rank cannot run without the others) or
  KILLED;
- all tasks SUCCEEDED: the job SUCCEEDED; any RUNNING: RUNNING; any placed: BUILDING;
  else PENDING.
A task that ends releases its capacity on its worker at once; the worker learns from the
next heartbeat that the controller no longer wants it and kills it.
"""

from collections.abc import Callable, Mapping

from common.states import JobState, TaskState, job_finished, task_finished
from local_cluster.model import Job, Task, Worker
from local_cluster.states import task_active

Events = Callable[..., None]


def release(task: Task, workers: Mapping[str, Worker]) -> None:
    worker = workers.get(task.worker_id)
    if worker is not None:
        worker.active_tasks.pop((task.job_id, task.index), None)
        cpu = worker.held_cpu.pop((task.job_id, task.index), 0)
        if worker.holds_killed and task.state == TaskState.KILLED:
            worker.leaked_cpu += cpu  # the fault: the killed task's CPU is never given back


def end_task(task: Task, state: TaskState, now: float, workers: Mapping[str, Worker], error: str = "") -> None:
    task.state = state
    task.finished_at = now
    task.can_be_scheduled = False
    if error and not task.error:
        task.error = error
    release(task, workers)


def finish_job(
    job: Job, state: JobState, now: float, workers: Mapping[str, Worker], events: Events, error: str = "",
    exit_code: int = 0, others: TaskState = TaskState.KILLED,
) -> None:  # fmt: skip
    """End the job, ending each unfinished task as `others`."""
    for task in job.tasks:
        if not task_finished(task.state):
            end_task(task, others, now, workers, error)
    job.state, job.finished_at = state, now
    job.error, job.exit_code = error, exit_code
    job.pending_reason = ""
    fields: dict[str, object] = {"job_id": job.job_id, "state": state.name}
    if error:
        fields["error"] = error
    events("job_finished", **fields, duration_s=round(now - job.submitted_at, 3))


def settle(job: Job, now: float, workers: Mapping[str, Worker], events: Events) -> None:
    """Derive the job's state from its tasks' after any task changed."""
    if job_finished(job.state):
        return
    failed = next((t for t in job.tasks if t.state in (TaskState.FAILED, TaskState.WORKER_FAILED)), None)
    if failed is not None:
        state = JobState.FAILED if failed.state == TaskState.FAILED else JobState.WORKER_FAILED
        error = f"task {failed.index}: {failed.error or f'exit code {failed.exit_code}'}"
        others = TaskState.COSCHED_FAILED if job.coscheduled else TaskState.KILLED
        finish_job(job, state, now, workers, events, error, failed.exit_code, others)
    elif all(t.state == TaskState.SUCCEEDED for t in job.tasks):
        finish_job(job, JobState.SUCCEEDED, now, workers, events)
    elif any(t.state == TaskState.RUNNING for t in job.tasks):
        job.state = JobState.RUNNING
    elif any(task_active(t.state) for t in job.tasks):
        job.state = JobState.BUILDING
    else:
        job.state = JobState.PENDING


def task_counts(job: Job) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task in job.tasks:
        name = task.state.name.lower()
        counts[name] = counts.get(name, 0) + 1
    return counts
