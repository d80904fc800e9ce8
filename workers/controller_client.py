"""What every gRPC child shares: its one channel, RPC deadlines, polling waits, conversions.

Rules the children follow, and why:
- This module imports grpc at the top. It is imported only in a child after the fork
  (never preloaded by the supervisor), so the supervisor itself never holds gRPC state
  and can keep forking safely.
- One channel per child, opened after the fork and closed on every exit path
  (`connect` is a context manager around `grpc.insecure_channel`).
- Every RPC carries a timeout derived from the run's deadline (`rpc_timeout`), so a hung
  controller can never hold a child past the deadline.
- Waits between polls are `select` on the stop fd (`wait_or_stop`): a stop request wakes
  them at once, and there is no sleep that a stop cannot interrupt.
- A failed poll is logged with its status code and retried at the next interval; a
  controller that stays UNAVAILABLE longer than a bound is reported once (`Outage`).
"""

import contextlib
import datetime
import enum
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.deadline import Deadline
from common.messages import Kind
from iris_smoke_api.v1 import controller_pb2, controller_pb2_grpc
from workers.runtime import ChildContext

# One RPC against a healthy controller takes milliseconds; 10 s means it is wedged.
RPC_TIMEOUT_S = 10.0
# Transient by nature (restart, tunnel reconnect); longer than this is worth a report.
UNAVAILABLE_REPORT_S = 30.0
HEALTH_RETRY_S = 0.2
# Short enough that a stop request, checked between attempts, is seen well within the grace.
HEALTH_CHECK_S = 0.25

Stub = controller_pb2_grpc.ControllerServiceStub
Clock = Callable[[], float]


class ControllerState(enum.StrEnum):
    """How a child sees the controller; carried by `controller_unavailable` reports."""

    REACHABLE = "reachable"
    UNAVAILABLE = "unavailable"


def rpc_timeout(deadline: Deadline, limit_s: float = RPC_TIMEOUT_S) -> float:
    """The timeout for one RPC: the smaller of `limit_s` and the run's time left."""
    return min(limit_s, deadline.remaining())


@dataclass(frozen=True)
class Connection:
    channel: grpc.Channel
    stub: Stub


@contextlib.contextmanager
def connect(address: str) -> Iterator[Connection]:
    """The child's one channel and its stub; the channel is closed however the block ends."""
    with grpc.insecure_channel(address) as channel:
        yield Connection(channel, controller_pb2_grpc.ControllerServiceStub(channel))


def status_code(exc: grpc.RpcError) -> str:
    """The status code's name (`UNAVAILABLE`), for events; an RpcError without one says UNKNOWN."""
    code = exc.code() if isinstance(exc, grpc.Call) else None
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


def status_details(exc: grpc.RpcError) -> str:
    details = exc.details() if isinstance(exc, grpc.Call) else None
    return str(details or "")[:300]


def wait_or_stop(ctx: ChildContext, seconds: float) -> bool:
    """Wait up to `seconds` (capped by the deadline); True if a stop was requested."""
    if not ctx.stop.requested():
        select.select([ctx.stop.fd], [], [], max(0.0, ctx.deadline.cap(seconds)))
    return ctx.stop.requested() or ctx.deadline.expired()


def poll_every(ctx: ChildContext, interval_s: float) -> Iterator[int]:
    """Yield once at once and then every `interval_s`, until a stop or the deadline.

    The interval runs from the start of one poll to the start of the next, so a slow
    RPC does not stretch the cadence; a poll that overran its interval is followed at once.
    """
    polls = 0
    while not (ctx.stop.requested() or ctx.deadline.expired()):
        started = time.monotonic()
        yield polls
        polls += 1
        if wait_or_stop(ctx, interval_s - (time.monotonic() - started)):
            return


@dataclass
class Outage:
    """Tracks how long the controller has been UNAVAILABLE, and reports a long outage once."""

    bound_s: float = UNAVAILABLE_REPORT_S
    clock: Clock = time.monotonic
    since: float | None = None
    reported: bool = False

    def failed(self, code: str) -> float | None:
        """Record a failed RPC; return the outage's length the first time it exceeds the bound."""
        if code != grpc.StatusCode.UNAVAILABLE.name:
            return None
        now = self.clock()
        if self.since is None:
            self.since = now
        if not self.reported and now - self.since >= self.bound_s:
            self.reported = True
            return now - self.since
        return None

    def succeeded(self) -> float | None:
        """Record a successful RPC; return how long the outage lasted if one was reported."""
        lasted = None if self.since is None or not self.reported else self.clock() - self.since
        self.since, self.reported = None, False
        return lasted


def outage_for(ctx: ChildContext) -> Outage:
    """An Outage with the bound from the child's args (`unavailable_report_s`), else the default."""
    return Outage(bound_s=float(ctx.args.get("unavailable_report_s", UNAVAILABLE_REPORT_S)))


def rpc_failed(ctx: ChildContext, outage: Outage, event: str, exc: grpc.RpcError, **fields: Any) -> None:
    """Log a failed RPC as `event` with its status code, and report a long outage once."""
    code = status_code(exc)
    ctx.log.warning(event, code=code, details=status_details(exc), **fields)
    lasted = outage.failed(code)
    if lasted is not None:
        ctx.log.error("controller_unavailable", for_s=round(lasted, 1), bound_s=outage.bound_s)
        ctx.channel.send(Kind.PROGRESS, controller=ControllerState.UNAVAILABLE, unavailable_for_s=round(lasted, 1))


def rpc_succeeded(ctx: ChildContext, outage: Outage) -> None:
    lasted = outage.succeeded()
    if lasted is not None:
        ctx.log.info("controller_available_again", after_s=round(lasted, 1))
        ctx.channel.send(Kind.PROGRESS, controller=ControllerState.REACHABLE, unavailable_for_s=round(lasted, 1))


def wait_until_serving(address: str, deadline: Deadline, timeout_s: float, stop_fd: int | None = None) -> bool:
    """True once the controller's gRPC health service answers SERVING within `timeout_s`.

    Uses its own short-lived channel, for callers that have none yet (a tunnel, the
    cluster child); a child that already holds one uses `channel_serving`.
    """
    with grpc.insecure_channel(address) as channel:
        return channel_serving(channel, deadline, timeout_s, stop_fd)


def channel_serving(channel: grpc.Channel, deadline: Deadline, timeout_s: float, stop_fd: int | None = None) -> bool:
    """Poll the standard health service on `channel` until SERVING, a stop, or the time is up.

    wait_for_ready makes each check wait for the connection instead of failing fast while
    the server is still binding; the check's own timeout bounds that wait.
    """
    end = Deadline.after(min(timeout_s, deadline.remaining()))
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="")
    while not end.expired():
        try:
            reply = stub.Check(request, timeout=max(0.01, end.cap(HEALTH_CHECK_S)), wait_for_ready=True)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return True
        except grpc.RpcError:
            pass  # not up yet: try again until `end`
        ready, _, _ = select.select([stop_fd] if stop_fd is not None else [], [], [], end.cap(HEALTH_RETRY_S))
        if ready:
            return False
    return False


def _enum_name(enum_type: Any, value: int, prefix: str) -> str:
    try:
        name: str = enum_type.Name(value)
    except ValueError:
        return "unspecified"  # a newer controller's state: shown, never matched
    return name.removeprefix(prefix).lower()


class JobState(enum.StrEnum):
    """A job's state by its lower-case proto name, the form that goes into JSON and events."""

    UNSPECIFIED = "unspecified"
    PENDING = "pending"
    BUILDING = "building"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"
    WORKER_FAILED = "worker_failed"
    UNSCHEDULABLE = "unschedulable"

    @classmethod
    def of(cls, value: int) -> "JobState":
        return cls(_enum_name(controller_pb2.JobState, value, "JOB_STATE_"))

    @property
    def finished(self) -> bool:
        return self in _JOB_FINISHED


_JOB_FINISHED = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.KILLED, JobState.WORKER_FAILED, JobState.UNSCHEDULABLE}
)


class TaskState(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    PENDING = "pending"
    BUILDING = "building"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"
    WORKER_FAILED = "worker_failed"
    UNSCHEDULABLE = "unschedulable"
    ASSIGNED = "assigned"
    PREEMPTED = "preempted"
    COSCHED_FAILED = "cosched_failed"

    @classmethod
    def of(cls, value: int) -> "TaskState":
        return cls(_enum_name(controller_pb2.TaskState, value, "TASK_STATE_"))


def vm_state_name(value: int) -> str:
    """`VM_STATE_BOOTING` -> "booting"."""
    return _enum_name(controller_pb2.VmState, value, "VM_STATE_")


def accelerator_name(value: int) -> str:
    """`ACCELERATOR_TYPE_TPU` -> "tpu"."""
    return _enum_name(controller_pb2.AcceleratorType, value, "ACCELERATOR_TYPE_")


def utc_now() -> str:
    """Wall-clock time for records (never for waits), RFC 3339 in UTC like the event log."""
    return datetime.datetime.now(datetime.UTC).isoformat()


def rfc3339(ts: Timestamp) -> str | None:
    """An RFC 3339 UTC string, or None for an unset timestamp (proto3 cannot tell 0 apart)."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToJsonString()
