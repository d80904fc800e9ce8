"""A LaunchJob the controller refuses for who we are (Iris's read-only `dashboard` role) ends the
tests at once: one launch tried, the refusal reported once (`unauthenticated`, which the supervisor
turns into `controller_unauthenticated` and the `--observe` hint), every test reported as an error.

Decision logic only: the runner is given a controller that refuses LaunchJob and a context that
records what it sends."""

import tempfile
import types

from common.deadline import Deadline
from common.messages import Kind
from common.outcome import FailureReason
from supervisor.arbiter import Supervisor
from supervisor.children import ChildRecord, ChildSpec
from supervisor.preflight import plan
from supervisor.run_cli import build_parser
from supervisor.smoke import LAUNCH_REFUSED_FIX, SmokeRun
from tests.workers.conftest import embedded
from tests.workers.test_placement_check import Recorder
from workers.child_args import SuiteArgs
from workers.controller.credentials import Credential
from workers.controller.model import ControllerError, ErrorCode, JobRequest
from workers.messages import Unauthenticated
from workers.runtime import StopRequest
from workers.smoke_tests.runner import SmokeTests
from workers.smoke_tests.suite import PlannedTest

LAUNCH = "iris.cluster.ControllerService/LaunchJob"


class RefusingController:
    """Answers every read; refuses every LaunchJob, as Iris does for a `dashboard` identity."""

    def __init__(self) -> None:
        self.launches = 0

    def launch(self, request: JobRequest) -> str:
        self.launches += 1
        raise ControllerError(ErrorCode.PERMISSION_DENIED, LAUNCH, "role dashboard may not call LaunchJob")

    def terminate(self, job_ids: list[str], timeout_s: float) -> dict[str, ControllerError | None]:
        raise AssertionError(f"nothing was launched, nothing to terminate: {job_ids}")


def test_a_refused_launch_stops_the_launches_and_reports_every_test_once() -> None:
    recorder, controller = Recorder(), RefusingController()
    ctx = types.SimpleNamespace(args=SuiteArgs(embedded("unix:/nowhere", "t"), 60, ()), deadline=Deadline.after(60),
                                log=recorder, channel=recorder, stop=StopRequest())  # fmt: skip
    runs = [PlannedTest(name, [JobRequest(name, ("true",))]) for name in ("simple", "concurrent", "coscheduled")]
    tests = SmokeTests(ctx, controller, runs, 300)  # type: ignore[arg-type]
    tests.launch_all()
    assert controller.launches == 1 and tests.pending() == []
    reports = [body for kind, body in recorder.sent if kind is Kind.PROGRESS]
    assert [type(m) for m in recorder.messages if m.kind is Kind.PROGRESS] == [Unauthenticated]
    assert reports == [{"code": ErrorCode.PERMISSION_DENIED, "method": LAUNCH, "credential": "iris",
                        "details": "role dashboard may not call LaunchJob"}]  # fmt: skip
    results = {body["test"]: body for kind, body in recorder.sent if kind is Kind.RESULT}
    assert {name: r["outcome"] for name, r in results.items()} == dict.fromkeys(
        ("simple", "concurrent", "coscheduled"), "error"
    )
    assert "permission_denied" in results["simple"]["error"]
    assert "not launched: the controller refused LaunchJob" in results["concurrent"]["error"]


def test_the_supervisor_names_the_fix_for_a_launch_iris_refused_only() -> None:
    """LaunchJob refused by Iris: the reason carries the fix; a token refused on a read does not, nor a
    LaunchJob the proxy in front of Iris refused (an Iris role would not help)."""
    cases = (
        (LAUNCH, "iris", True),
        ("iris.cluster.ControllerService/ListJobs", "iris", False),
        (LAUNCH, "proxy", False),
    )
    for method, credential, fixed in cases:
        with tempfile.TemporaryDirectory() as tmp:
            args = build_parser().parse_args(["--log-dir", tmp, "--cluster", "iris", "--controller", "http://h:1"])
            p = plan(args)
            run = SmokeRun(p, Supervisor(p.run_id, p.run_dir, Deadline.after(60)))
            refused = Unauthenticated(ErrorCode.PERMISSION_DENIED, method, Credential(credential), "no")
            record = ChildRecord(ChildSpec("tests", "tests", "x:main"))
            run._on_message(record, refused)
            assert run.failures()[0] is FailureReason.CONTROLLER_UNAUTHENTICATED
            refused_seen = run.summary_extra().controller_unauthenticated
            assert refused_seen is not None
            fix = refused_seen.fix
            assert fix == (LAUNCH_REFUSED_FIX if fixed else None)
