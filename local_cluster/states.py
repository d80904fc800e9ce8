"""Lifecycle states of jobs, tasks and VMs: the proto's enums, generated, plus what they mean here.

Jobs and tasks have the one state type every package uses, `common.states` (by name; the
proto's numbers only at the gRPC edge, `local_cluster/convert.py`). VM states are this
cluster's alone: their values equal the proto's numbers, so converting is `VmState(pb_value)`
one way and `.value` the other.
"""

import enum

from common.states import TaskState
from iris_smoke_api.v1.states import AcceleratorTypeName, VmState

__all__ = ["AcceleratorType", "ActionType", "VmState"]

# Holds capacity on a worker.
TASK_ACTIVE = frozenset({TaskState.ASSIGNED, TaskState.BUILDING, TaskState.RUNNING})
VM_GONE = frozenset({VmState.TERMINATED, VmState.FAILED, VmState.PREEMPTED})

# The device kinds a scale group or a job asks for, by lower-case name ("cpu", "gpu",
# "tpu"); `unspecified` is the proto's zero value, never a valid choice in a config.
AcceleratorType = AcceleratorTypeName
ACCELERATOR_CHOICES = tuple(t for t in AcceleratorType if t != AcceleratorType.UNSPECIFIED)


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
