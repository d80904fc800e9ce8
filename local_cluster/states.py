"""Lifecycle states of jobs, tasks and VMs: the proto's enums, generated, plus what they mean here.

Values equal the proto enum numbers and names match them after the prefix, so converting
is `JobState(pb_value)` one way and `.value` the other.
"""

import enum

from iris_smoke_api.v1.states import AcceleratorTypeName, JobState, TaskState, VmState

__all__ = ["AcceleratorType", "ActionType", "JobState", "TaskState", "VmState"]

JOB_FINISHED = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.KILLED, JobState.WORKER_FAILED, JobState.UNSCHEDULABLE}
)
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
# Holds capacity on a worker.
TASK_ACTIVE = frozenset({TaskState.ASSIGNED, TaskState.BUILDING, TaskState.RUNNING})
VM_GONE = frozenset({VmState.TERMINATED, VmState.FAILED, VmState.PREEMPTED})

# The device kinds a scale group or a job asks for, by lower-case name ("cpu", "gpu",
# "tpu"); `unspecified` is the proto's zero value, never a valid choice in a config.
AcceleratorType = AcceleratorTypeName
ACCELERATOR_CHOICES = tuple(t for t in AcceleratorType if t != AcceleratorType.UNSPECIFIED)


def job_finished(state: JobState) -> bool:
    return state in JOB_FINISHED


def task_finished(state: TaskState) -> bool:
    return state in TASK_FINISHED


def task_active(state: TaskState) -> bool:
    return state in TASK_ACTIVE


def vm_gone(state: VmState) -> bool:
    return state in VM_GONE


class ActionType(enum.StrEnum):
    """What the autoscaler did; a string on the wire (`Action.action_type`), not a proto enum."""

    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    QUOTA_EXCEEDED = "quota_exceeded"
    BACKOFF_TRIGGERED = "backoff_triggered"
    WORKER_FAILED = "worker_failed"
