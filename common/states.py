"""Job and task states: one type each for every package (the embedded cluster, the children,
the supervisor), the lower-case names generated from the proto, and what they mean here.

The proto's numbers appear only where a gRPC message is built or read (`number`,
`job_state_of`, `task_state_of`); everywhere else a state is its name, the form that goes
into JSON and events.
"""

from iris_smoke_api.v1 import states as wire
from iris_smoke_api.v1.states import JobStateName as JobState
from iris_smoke_api.v1.states import TaskStateName as TaskState

__all__ = ["FAILED_TASK_STATES", "JOB_FINISHED", "TASK_FINISHED", "JobState", "TaskState", "job_finished",
           "job_state_of", "number", "task_finished", "task_state_of"]  # fmt: skip

JOB_FINISHED = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.KILLED, JobState.WORKER_FAILED, JobState.UNSCHEDULABLE}
)
FAILED_TASK_STATES = frozenset({TaskState.FAILED, TaskState.WORKER_FAILED})
# As Iris's TERMINAL_TASK_STATES (iris/resources/state.py): preempted counts, since a task of
# a finished job is not retried. MISSING (Iris 0.2.227: a worker lost the attempt's spec) is
# not an end: Iris re-queues the task under a fresh attempt.
TASK_FINISHED = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.KILLED, TaskState.WORKER_FAILED, TaskState.UNSCHEDULABLE,
     TaskState.PREEMPTED, TaskState.COSCHED_FAILED}
)  # fmt: skip


def job_finished(state: JobState) -> bool:
    return state in JOB_FINISHED


def task_finished(state: TaskState) -> bool:
    return state in TASK_FINISHED


def number(state: JobState | TaskState) -> int:
    """The proto's number for a state (the generated enums share member names)."""
    numbers = wire.JobState if isinstance(state, JobState) else wire.TaskState
    return numbers[state.name].value


def job_state_of(value: int) -> JobState:
    """A proto number -> the state; a number we do not know -> `unspecified`."""
    try:
        return JobState[wire.JobState(value).name]
    except ValueError:
        return JobState.UNSPECIFIED


def task_state_of(value: int) -> TaskState:
    try:
        return TaskState[wire.TaskState(value).name]
    except ValueError:
        return TaskState.UNSPECIFIED
