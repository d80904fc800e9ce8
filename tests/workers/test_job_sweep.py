"""The tests child's last sweep on the embedded cluster: however it ends, every job under the
run's root is terminated and seen to end, tasks included, and nobody else's job is touched."""

import dataclasses
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from common.messages import Kind
from common.processes import signal_group
from local_cluster import private_socket
from supervisor import smoke
from supervisor.arbiter import STOP_GRACE_S
from supervisor.canary.budgets import STOP_MARGIN_S
from supervisor.canary.config import DEFAULT_CLEANUP_BUDGET_S
from tests.helpers.cluster import running_local_cluster
from tests.helpers.forked import ForkedChild, forked_child, run_to_end
from tests.helpers.waiting import wait_for
from tests.workers.conftest import FAST_CONFIG, embedded, launch_jobs
from tests.workers.probe_args import ProbeArgs, as_custom_test
from workers import child_args
from workers.child_args import TESTS_CHILD_GRACE_S, SuiteArgs
from workers.messages import JobsConfirmed

ENDED = {"succeeded", "failed", "killed", "worker_failed", "unschedulable", "preempted", "cosched_failed"}
SLEEPER = {"argv": ["sh", "-c", "echo started; sleep 60"], "device": "cpu"}
# A sweep that gives up on a gone controller: a round of failed calls, the probe, the report;
# far below its 4 s budget (what it spent retrying before it knew).
SWEEP_GONE_EXIT_S = 2.0


def _root(name: str) -> str:
    return f"{name}{uuid.uuid4().hex[:8]}"


def _args(address: str, root: str, tests: list[dict[str, Any]]) -> SuiteArgs:
    custom = tuple(as_custom_test(t) for t in tests)
    return SuiteArgs(embedded(address, root), 60, (), custom=custom, poll_interval_s=0.1)


def _jobs_and_tasks(address: str, run_dir: Path, root: str) -> dict[str, dict[str, Any]]:
    probe = run_to_end("tests.workers.probes:jobs_and_tasks", ProbeArgs(embedded(address, root)), run_dir, 10)
    return {j["job_id"]: j for j in probe.of(Kind.RESULT)[0]["jobs"]}


def _confirmed(child: ForkedChild) -> dict[str, Any]:
    (confirmed,) = [m.body for m in child.messages if isinstance(m, JobsConfirmed)]
    (event,) = child.events("jobs_confirmed")
    assert {k: event[k] for k in confirmed} == confirmed
    return dict(confirmed)


def test_at_the_deadline_every_job_is_terminated_and_seen_ended_with_its_tasks(cluster: str, tmp_path: Path) -> None:
    """The deadline mid-test: exit 124, jobs_confirmed counts both jobs, and the controller shows
    them and each of their tasks ended."""
    root = _root("dl")
    tests = [{"name": "two-sleepers", **SLEEPER, "replicas": 2}, {"name": "one-sleeper", **SLEEPER}]
    run_dir = tmp_path / "run"
    with forked_child(
        "workers.smoke_tests:main", _args(cluster, root, tests), run_dir, name="tests", timeout_s=4.0,
        grace_s=TESTS_CHILD_GRACE_S,
    ) as child:  # fmt: skip
        child.wait_message(Kind.READY, timeout_s=4)
        assert child.reap(4.0 + TESTS_CHILD_GRACE_S) == 124
    assert {r["outcome"] for r in child.of(Kind.RESULT)} == {"timeout"}
    assert _confirmed(child) == {"terminated": 2, "confirmed": 2, "unconfirmed": []}
    jobs = _jobs_and_tasks(cluster, tmp_path / "probe", root)
    assert sorted(len(j["tasks"]) for j in jobs.values()) == [1, 2]
    assert all(j["state"] == "killed" and set(j["tasks"]) <= ENDED for j in jobs.values()), jobs


def test_a_normal_end_sweeps_the_root_and_ends_a_job_whose_launch_reply_was_lost(cluster: str, tmp_path: Path) -> None:
    """A job under the root the child never launched (as after a LaunchJob that timed out) is
    terminated when the suite ends normally; a job under another root is left alone."""
    root, other = _root("ne"), _root("other")
    (lost,) = launch_jobs(cluster, tmp_path / "probe-lost", root, {"name": "lost-launch", **SLEEPER})
    (bystander,) = launch_jobs(cluster, tmp_path / "probe-other", other, {"name": "bystander", **SLEEPER})
    quick = [{"name": "quick", "argv": ["sh", "-c", "echo ok"], "device": "cpu"}]
    child = run_to_end("workers.smoke_tests:main", _args(cluster, root, quick), tmp_path / "run", 30, name="tests")
    assert child.exit_code == 0
    assert [(r["test"], r["outcome"]) for r in child.of(Kind.RESULT)] == [("quick", "passed")]
    assert _confirmed(child) == {"terminated": 1, "confirmed": 2, "unconfirmed": []}
    assert [e["job"] for e in child.events("job_terminated")] == [lost]
    jobs = _jobs_and_tasks(cluster, tmp_path / "probe", root)
    assert jobs[lost]["state"] == "killed" and set(jobs[lost]["tasks"]) <= ENDED, jobs
    assert _jobs_and_tasks(cluster, tmp_path / "probe-after", other)[bystander]["state"] in ("pending", "running")


def test_the_stop_budgets_nest_around_the_sweep() -> None:
    """Innermost first: a call in flight, the sweep, the last messages make the tests child's grace;
    the supervisor waits twice that before KILL; the cluster outlives the deadline by more than the
    grace (the sweep after a deadline needs its controller); and a canary's default cleanup budget
    holds the whole ordered stop (tests, monitors, streams drained, a real Iris cluster)."""
    assert child_args.TESTS_CHILD_GRACE_S == (
        child_args.TESTS_CALL_LIMIT_S + child_args.JOB_SWEEP_BUDGET_S + child_args.TESTS_REPORT_S
    )
    assert smoke.TESTS_STOP_GRACE_S == 2 * child_args.TESTS_CHILD_GRACE_S
    assert child_args.TESTS_CHILD_GRACE_S < smoke.CLUSTER_EXTRA_S
    ordered_stop = smoke.TESTS_STOP_GRACE_S + STOP_GRACE_S + smoke.STREAM_DRAIN_BUDGET_S + STOP_GRACE_S
    assert ordered_stop + smoke.IRIS_STOP_GRACE_S + STOP_MARGIN_S < DEFAULT_CLEANUP_BUDGET_S


def _kill_cluster(popen: "subprocess.Popen[bytes]", address: str, how: str) -> None:
    """SIGKILL the cluster's group (its socket file stays: connections are refused), and for
    `socket_gone` remove the socket too (as the cluster's own clean exit does)."""
    signal_group(popen.pid, signal.SIGKILL)
    popen.wait(timeout=5)
    if how == "socket_gone":
        private_socket.socket_of(address).unlink()


@pytest.mark.parametrize("how", ["refused", "socket_gone"])
def test_a_controller_known_gone_ends_the_sweep_at_once(tmp_path: Path, how: str) -> None:
    """The run's own cluster is gone (its socket missing, or refusing connections, as after the
    supervisor was SIGKILLed): the sweep does not spend its budget retrying; it says why and ends."""
    root = _root("gone")
    with running_local_cluster(tmp_path, FAST_CONFIG) as (address, _state_dir, popen):
        args = dataclasses.replace(_args(address, root, [{"name": "sleeper", **SLEEPER}]), cluster_owned=True)
        with forked_child(
            "workers.smoke_tests:main", args, tmp_path / "run", name="tests", grace_s=TESTS_CHILD_GRACE_S
        ) as child:
            child.wait_message(Kind.READY, timeout_s=4)
            wait_for(lambda: child.events("job_launched"), 10, "the sleeper's launch")
            _kill_cluster(popen, address, how)
            child.stop()
            assert child.reap(TESTS_CHILD_GRACE_S + 1) is not None, child.events_tail()
            assert child.stop_to_exit_s is not None and child.stop_to_exit_s < SWEEP_GONE_EXIT_S, child.events_tail()
    (skipped,) = child.events("sweep_skipped")
    assert skipped["reason"] == "controller_gone" and skipped["unconfirmed"] == 1, skipped
    (unconfirmed,) = _confirmed(child)["unconfirmed"]
    assert unconfirmed.startswith(f"{root}-sleeper"), unconfirmed
