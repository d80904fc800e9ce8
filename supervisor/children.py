"""The child table: what to run (a frozen spec) and how it is doing (a record with a state).

States and their transitions, each logged as `child_state_changed`:
    STARTING -> RUNNING          the child sent `ready`
    STARTING|RUNNING -> BACKOFF  it died unexpectedly and will be restarted
    BACKOFF -> STARTING          restarted
    * -> STOPPING                we asked it to stop
    * -> EXITED                  it ended and is done (clean exit, or asked to stop)
    * -> FAILED                  it kept dying, or cannot work; fails the run if critical
"""

import enum
from dataclasses import dataclass, field
from typing import TypeVar

from common.jsonshape import JsonObject, to_json_object
from common.messages import Kind, Message, MessageReader
from supervisor.restart import FailureHistory, RestartMode, RestartPolicy
from workers import messages as _messages  # noqa: F401  (every child's message type, for the readers)

M = TypeVar("M", bound=Message)


class ChildState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    EXITED = "exited"
    FAILED = "failed"


FINISHED = frozenset({ChildState.EXITED, ChildState.FAILED})


@dataclass(frozen=True)
class ChildSpec:
    name: str  # unique in the run: "stream:<vm>-<host>", "monitor:scheduling"
    role: str  # what kind of child: stream, monitor, discovery, tests, cluster
    entrypoint: str  # "module:function", imported in the child after fork
    # The entrypoint's frozen arguments dataclass (workers/*: `...Args`, `StreamSpec`), passed
    # to the child as the object itself; None for an entrypoint that takes none.
    args: object = None
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    critical: bool = False
    # Import the entrypoint's module in the supervisor before forking, so every child
    # shares its pages instead of importing its own copy (about 0.5 MiB each). Only for
    # modules that never import grpc: the supervisor checks and refuses otherwise.
    preload: bool = False
    # TERM-to-KILL grace for this child (None: the supervisor's). The child's own grace,
    # for stopping its subprocesses, is half of it, so the budgets nest.
    stop_grace_s: float | None = None
    # An absolute monotonic deadline for this child (None: the run's). Work that must
    # happen after the run's deadline (diagnostics) gets a slice of the cleanup budget.
    deadline_at: float | None = None

    @classmethod
    def once(
        cls,
        name: str,
        entrypoint: str,
        args: object,
        *,
        critical: bool = False,
        stop_grace_s: float | None = None,
        deadline_at: float | None = None,
    ) -> "ChildSpec":
        """A child that runs once and is never restarted (cluster, tests, fleet, diagnostics): its role is its name."""
        never = RestartPolicy(mode=RestartMode.NEVER)
        return cls(name, name, entrypoint, args, never, critical, stop_grace_s=stop_grace_s, deadline_at=deadline_at)


@dataclass
class ChildRecord:
    spec: ChildSpec
    state: ChildState = ChildState.STARTING
    pid: int | None = None
    fd: int | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    exit_code: int | None = None
    starts: int = 0
    history: FailureHistory = field(default_factory=FailureHistory)
    reader: MessageReader = field(default_factory=MessageReader)
    last: dict[Kind, Message] = field(default_factory=dict)  # the last message of each kind

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def alive(self) -> bool:
        return self.pid is not None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def stats(self) -> JsonObject:
        """The child's last STATS message as sent (results.json's `children[].stats`)."""
        return to_json_object(self.last[Kind.STATS]) if Kind.STATS in self.last else {}

    def last_of(self, cls: type[M]) -> M | None:
        """The child's last message of `cls`'s kind, when it is a `cls` (each role sends its own classes)."""
        message = self.last.get(cls.KIND)
        return message if isinstance(message, cls) else None

    def numbers(self) -> Message | None:
        """Its counters: the STATS it sent at its end, else its last PROGRESS."""
        return self.last.get(Kind.STATS) or self.last.get(Kind.PROGRESS)
