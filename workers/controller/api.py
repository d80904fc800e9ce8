"""The controller interface every child uses, and how a child opens one.

Each method is one question or command; each call's timeout is the adapter's per-call
limit capped by the run's deadline, so a hung controller never holds a child past it.
Failures raise `ControllerError` (an `ApiMismatch` when the reply has the wrong shape).
"""

import contextlib
from collections.abc import Iterator, Sequence
from typing import Protocol

from common.controller_target import ApiKind, ControllerTarget
from common.deadline import Deadline
from workers.controller.calls import RPC_TIMEOUT_S
from workers.controller.model import (
    AutoscalerStatus,
    ControllerError,
    Endpoint,
    ExecResult,
    Job,
    JobRequest,
    LogLevel,
    LogLine,
    LogService,
    ProcessStatus,
    Profile,
    Task,
    UserBand,
    Worker,
)


class Controller(Protocol):
    # The constraint keys a job submitted from a task inherits from its job; None = every key.
    inherited_constraint_keys: frozenset[str] | None

    def serving(self, timeout_s: float, stop_fd: int | None = None) -> bool:
        """True once the controller answers its health check within `timeout_s` (a stop ends the wait)."""
        ...

    def list_workers(self) -> list[Worker]: ...

    def launch(self, request: JobRequest) -> str:
        """Submit one job under the run's root; its job id."""
        ...

    def list_jobs(self) -> list[Job]:
        """This run's jobs: those under its root."""
        ...

    def list_tasks(self, job_id: str) -> list[Task]: ...

    def terminate(self, job_ids: Sequence[str], timeout_s: float) -> dict[str, ControllerError | None]:
        """Terminate each job (all in flight at once where the wire allows); None where it worked.

        A job not under the run's root is never sent: its entry is a `not_ours` error."""
        ...

    def autoscaler(self) -> AutoscalerStatus: ...

    def task_log_tail(self, job_id: str, task_index: int, lines: int) -> list[str]:
        """The last `lines` lines a task wrote (its latest attempt)."""
        ...

    def task_logs(self, job_id: str, task_index: int, lines: int, min_level: LogLevel | None = None) -> list[LogLine]:
        """The last `lines` lines a task wrote, with their levels; with `min_level`, the controller leaves
        out the lines below it (those it gave no level pass, as on Iris)."""
        ...

    def list_endpoints(self, prefix: str = "") -> list[Endpoint]:
        """The endpoints registered under the run's root whose names continue with `prefix`."""
        ...

    def database_ping(self) -> float:
        """Seconds the controller takes to answer `SELECT 1` on its database (Iris's ExecuteRawQuery);
        a controller without one raises `unimplemented` with why."""
        ...

    def process_status(self) -> ProcessStatus:
        """The controller process's build and resources; `unimplemented` with why where it cannot say."""
        ...

    def user_band(self) -> UserBand:
        """Who we are to the controller and the band its scheduler gives us; `unimplemented` where it has none."""
        ...

    def exec_in_container(self, job_id: str, task_index: int, argv: Sequence[str], timeout_s: float) -> ExecResult:
        """Run `argv` in the container of a running task of the run's job (at most `timeout_s`, and the
        call within its limit); `unimplemented` with why where tasks have no container to exec in."""
        ...

    def profile_task(self, job_id: str, task_index: int, duration_s: float) -> Profile:
        """A CPU profile of a running task of the run's job, sampled for `duration_s`; `unimplemented`
        with why where the task's runtime cannot profile."""
        ...

    def log_service(self) -> LogService | None:
        """Where the controller's log service is read (None: logs are container files, not a service)."""
        ...


@contextlib.contextmanager
def open_controller(
    target: ControllerTarget, deadline: Deadline, call_limit_s: float = RPC_TIMEOUT_S
) -> Iterator[Controller]:
    """The child's one connection to its controller, closed however the block ends.

    `call_limit_s` replaces RPC_TIMEOUT_S as the per-call limit: a child that must stay
    responsive to a stop (the tests child, within its grace) asks for less."""
    if target.api is ApiKind.IRIS:
        from workers.controller.connect_api import IrisController

        with IrisController.open(target, deadline, call_limit_s) as iris:
            yield iris
    else:
        from workers.controller.grpc_api import EmbeddedController

        with EmbeddedController.open(target, deadline, call_limit_s) as embedded:
            yield embedded
