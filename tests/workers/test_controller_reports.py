"""What a child tells the supervisor about its controller, and the failure reason each report becomes.

`polling.call_failed` turns a failed call into at most one report of each kind: an API we do
not speak (with the field), credentials refused (`unauthenticated`, `permission_denied`),
a long outage. The supervisor's `SmokeRun` turns each into its own failure reason, so a bad
token or a lost controller is not blamed on the tests or on discovery.
"""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from common.controller_target import ApiKind, ControllerTarget
from common.deadline import Deadline
from common.messages import Message
from common.outcome import ExitCode, FailureReason, exit_code_for, outcome_for
from supervisor.arbiter import Supervisor
from supervisor.children import ChildRecord, ChildSpec
from supervisor.preflight import plan
from supervisor.run_cli import build_parser
from supervisor.smoke import SmokeRun
from workers.child_args import DiagnosticsArgs
from workers.controller import polling
from workers.controller.credentials import Credential, ProxyRefused
from workers.controller.model import ApiMismatch, ControllerError, ErrorCode, JobState, Task, TaskState
from workers.diagnostics import Diagnostics, JobRow
from workers.messages import ApiMismatchReport, BrokenReply, ControllerAvailability, Unauthenticated
from workers.smoke_tests.runner import SmokeTests

METHOD = "iris.cluster.ControllerService/ListJobs"
FETCH_LOGS = "finelog.logging.LogService/FetchLogs"
MISMATCH = "FetchLogs: entries is an object, expected a list"
TARGET = ControllerTarget(ApiKind.IRIS, "http://h:1", "r")


@dataclass
class Recorder:
    """A child's log and channel, recorded."""

    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    deadline: Deadline = field(default_factory=lambda: Deadline.after(60.0))

    def warning(self, event: str, **fields: Any) -> None:
        self.events.append(("warning", event, fields))

    def error(self, event: str, **fields: Any) -> None:
        self.events.append(("error", event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self.events.append(("info", event, fields))

    def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def log(self) -> "Recorder":
        return self

    @property
    def channel(self) -> "Recorder":
        return self


def _fail(errors: list[ControllerError], clock: list[float] | None = None, deadline_s: float = 60.0) -> Recorder:
    ctx = Recorder(deadline=Deadline.after(deadline_s))
    now = clock or [0.0]
    outage = polling.Outage(bound_s=5.0, clock=lambda: now[0])
    for exc in errors:
        polling.call_failed(ctx, outage, "poll_failed", exc)  # type: ignore[arg-type]
        now[0] += 3.0
    return ctx


@pytest.mark.parametrize(
    ("error", "credential"),
    [
        (ControllerError(ErrorCode.UNAUTHENTICATED, METHOD, "invalid token"), "iris"),
        (ControllerError(ErrorCode.PERMISSION_DENIED, METHOD, "invalid token"), "iris"),
        (ProxyRefused(METHOD, "invalid token"), "proxy"),
    ],
)
def test_refused_credentials_are_reported_once_naming_the_credential(error: ControllerError, credential: str) -> None:
    ctx = _fail([error] * 3)
    refused = Unauthenticated(error.code, METHOD, Credential(credential), "invalid token")
    assert ctx.sent == [refused]
    assert [(level, e, f) for level, e, f in ctx.events if level == "error"] == [
        ("error", "controller_unauthenticated", {"code": error.code, "method": METHOD, "credential": credential,
                                                 "details": "invalid token"})
    ]  # fmt: skip


def test_a_timeout_is_a_broken_reply_unless_the_runs_deadline_cut_the_call_short() -> None:
    timeout = ControllerError(ErrorCode.CONTROLLER_TIMEOUT, METHOD, "no reply within 10 s")
    assert _fail([timeout] * 2).sent == [BrokenReply(ErrorCode.CONTROLLER_TIMEOUT, METHOD, "no reply within 10 s")]
    ctx = _fail([timeout], deadline_s=0.0)  # a poll in flight when the deadline came, cut to what was left
    assert ctx.sent == []
    assert [e for _, e, _ in ctx.events] == ["poll_failed"]


def test_a_log_followers_timeout_at_the_deadline_is_no_broken_reply() -> None:
    """The stream child's path (a follower's BROKEN_REPLY exit) reports through the same call."""
    for deadline_s, sent in ((60.0, 1), (0.0, 0)):
        ctx = Recorder(deadline=Deadline.after(deadline_s))
        polling.report_broken_reply(ctx, ErrorCode.CONTROLLER_TIMEOUT, FETCH_LOGS, "no reply within 10 s")  # type: ignore[arg-type]
        assert len(ctx.sent) == sent, (deadline_s, ctx.sent)
    ctx = Recorder(deadline=Deadline.after(0.0))  # a reply too large is the controller's, whenever it comes
    polling.report_broken_reply(ctx, ErrorCode.REPLY_TOO_LARGE, FETCH_LOGS, "over 8 MiB")  # type: ignore[arg-type]
    assert ctx.sent == [BrokenReply(ErrorCode.REPLY_TOO_LARGE, FETCH_LOGS, "over 8 MiB")]


def test_an_api_mismatch_report_carries_the_field() -> None:
    ctx = _fail([ApiMismatch(METHOD, "jobs[].state", "ListJobs: jobs[].state is a number, expected a string")] * 2)
    assert ctx.sent == [
        ApiMismatchReport(METHOD, "jobs[].state", "ListJobs: jobs[].state is a number, expected a string")
    ]


def _run(tmp: str) -> SmokeRun:
    args = build_parser().parse_args(["--log-dir", tmp, "--cluster", "iris", "--controller", "http://h:1"])
    p = plan(args)
    return SmokeRun(p, Supervisor(p.run_id, p.run_dir, Deadline.after(60)))


def _tell(run: SmokeRun, child: str, role: str, message: Message) -> None:
    run._on_message(ChildRecord(ChildSpec(child, role, "x:main")), message)


@pytest.mark.parametrize(
    ("message", "reason", "part"),
    [
        (Unauthenticated(ErrorCode.UNAUTHENTICATED, METHOD, Credential.IRIS, "bad"),
         FailureReason.CONTROLLER_UNAUTHENTICATED, "controller_unauthenticated"),
        (ControllerAvailability(polling.ControllerState.UNAVAILABLE, 31.0),
         FailureReason.CONTROLLER_UNAVAILABLE, "controller_outage"),
        (ApiMismatchReport(METHOD, "jobs", "d"), FailureReason.IRIS_API_MISMATCH, "api_mismatch"),
    ],
)  # fmt: skip
def test_each_report_is_its_own_failure_reason_and_exit_3(message: Message, reason: FailureReason, part: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = _run(tmp)
        _tell(run, "monitor:scheduling", "monitor", message)
        _tell(run, "discovery", "discovery", message)  # only the first report is kept
        reasons = run.failures()
        assert reasons[0] is reason
        assert exit_code_for(outcome_for(reasons), reasons) is ExitCode.INFRA
        assert getattr(run.summary_extra(), part).child == "monitor:scheduling"


class LogsMismatch:
    """A controller whose log service answers in a shape we do not read."""

    def task_log_tail(self, job_id: str, task_index: int, lines: int) -> list[str]:
        raise ApiMismatch(FETCH_LOGS, "entries", "FetchLogs: entries is an object, expected a list")

    def list_tasks(self, job_id: str) -> list[Task]:
        return [Task(f"{job_id}/0", 0, TaskState.FAILED)]


class NoStop:
    """A child nobody asked to stop."""

    def requested(self) -> bool:
        return False


@dataclass
class ChildCtx(Recorder):
    args: DiagnosticsArgs = field(default_factory=lambda: DiagnosticsArgs(TARGET, Path("/nonexistent")))
    stop: NoStop = field(default_factory=NoStop)


def test_a_log_tail_mismatch_in_the_tests_child_is_reported() -> None:
    ctx = ChildCtx()
    tests = SmokeTests(ctx, LogsMismatch(), [], 60.0)  # type: ignore[arg-type]
    assert tests._log_tail("/r/simple", 0) == ["<logs unavailable: iris_api_mismatch " + MISMATCH + ">"]
    assert ctx.sent == [ApiMismatchReport(FETCH_LOGS, "entries", MISMATCH)]


def test_a_log_tail_mismatch_in_diagnostics_is_reported() -> None:
    ctx = ChildCtx()
    job = JobRow("/r/x", "x", JobState.FAILED, "", "", 1, {}, None, None)
    found = Diagnostics(ctx, LogsMismatch()).failed_tasks([job])  # type: ignore[arg-type]
    assert found[0].lines == ()
    assert ctx.sent == [ApiMismatchReport(FETCH_LOGS, "entries", MISMATCH)]
