"""Lifecycle states of jobs, tasks and VMs.

Values equal the proto enum numbers and names match them after the prefix, so converting
is `JobState(pb_value)` one way and `.value` the other.
"""

import enum


class JobState(enum.IntEnum):
    UNSPECIFIED = 0
    PENDING = 1
    BUILDING = 2
    RUNNING = 3
    SUCCEEDED = 4
    FAILED = 5
    KILLED = 6
    WORKER_FAILED = 7
    UNSCHEDULABLE = 8

    @property
    def finished(self) -> bool:
        return self in JOB_FINISHED


JOB_FINISHED = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.KILLED, JobState.WORKER_FAILED, JobState.UNSCHEDULABLE}
)


class TaskState(enum.IntEnum):
    UNSPECIFIED = 0
    PENDING = 1
    BUILDING = 2
    RUNNING = 3
    SUCCEEDED = 4
    FAILED = 5
    KILLED = 6
    WORKER_FAILED = 7
    UNSCHEDULABLE = 8
    ASSIGNED = 9
    PREEMPTED = 10
    COSCHED_FAILED = 11

    @property
    def finished(self) -> bool:
        return self in TASK_FINISHED

    @property
    def active(self) -> bool:
        """Holds capacity on a worker."""
        return self in (TaskState.ASSIGNED, TaskState.BUILDING, TaskState.RUNNING)


TASK_FINISHED = frozenset(
    {
        TaskState.SUCCEEDED,
        TaskState.FAILED,
        TaskState.KILLED,
        TaskState.WORKER_FAILED,
        TaskState.UNSCHEDULABLE,
        TaskState.PREEMPTED,
        TaskState.COSCHED_FAILED,
    }
)


class VmState(enum.IntEnum):
    UNSPECIFIED = 0
    REQUESTING = 1
    BOOTING = 2
    INITIALIZING = 3
    READY = 4
    UNHEALTHY = 5
    STOPPING = 6
    TERMINATED = 7
    FAILED = 8
    PREEMPTED = 9

    @property
    def gone(self) -> bool:
        return self in (VmState.TERMINATED, VmState.FAILED, VmState.PREEMPTED)


class AcceleratorType(enum.StrEnum):
    CPU = "cpu"
    GPU = "gpu"
    TPU = "tpu"


class ActionType(enum.StrEnum):
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    QUOTA_EXCEEDED = "quota_exceeded"
    BACKOFF_TRIGGERED = "backoff_triggered"
    WORKER_FAILED = "worker_failed"
