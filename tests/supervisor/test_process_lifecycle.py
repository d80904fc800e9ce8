"""The supervisor with real processes: restart, stop, orphans, deadline, signals, audit."""

import os
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import processes
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.helpers.waiting import wait_for

EXIT_WAIT_S = 20.0


def _specs_run(tmp_path: Path, run_id: str, children: list[dict[str, Any]], **extra: Any) -> list[str]:
    spec = {"run_id": run_id, "run_dir": str(tmp_path / "runs" / run_id), "children": children, **extra}
    path = tmp_path / f"{run_id}.spec.json"
    path.write_bytes(orjson.dumps(spec))
    return ["-m", "tests.helpers.supervise_specs", str(path)]


def _assert_clean(sup: SupervisorProc) -> None:
    procs = sup.results()["processes"]
    assert procs["leaked"] == 0, procs
    assert procs["zombies"] == 0, procs
    assert procs["grpc_imported"] is False
    assert processes.with_run_tag(sup.run_id) == []
    assert processes.alive_pids(sup.child_pids()) == []


def _demo(**children_args: Any) -> dict[str, Any]:
    return {
        "name": "stream:demo",
        "role": "stream",
        "entrypoint": "workers.demo_stream:main",
        "args": children_args,
    }


def test_sigkilled_child_is_restarted_with_backoff(tmp_path: Path) -> None:
    """A child killed by SIGKILL comes back after a backoff, and every step is an event."""
    child = _demo(duration_s=60, interval_s=0.05) | {"restart": {"backoff_initial_s": 0.2}}
    with started(_specs_run(tmp_path, "restart", [child]), tmp_path, "restart") as sup:
        first = sup.wait_event("child_state_changed", new="running")[0]
        victim = sup.child_pids()[0]
        os.kill(victim, signal.SIGKILL)
        sup.wait_event("child_started", attempt=2)
        sup.wait_event("child_state_changed", new="running", count=2)
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit(EXIT_WAIT_S) == 143
        exited = sup.find("child_exited", exit_code=-9)
        assert exited and exited[0]["reason"] == "SIGKILL"
        backoff = sup.find("child_state_changed", new="backoff")
        assert backoff and 0.1 <= backoff[0]["delay_s"] <= 0.3
        assert first["timestamp"] < backoff[0]["timestamp"]
        _assert_clean(sup)


def test_double_forked_orphan_is_stopped_and_reaped(tmp_path: Path) -> None:
    """An orphan that escaped into its own session is adopted, stopped and reaped; no zombie remains."""
    child = _demo(duration_s=0.5, interval_s=0.05, orphan=True)
    with started(_specs_run(tmp_path, "orphan", [child]), tmp_path, "orphan") as sup:
        assert sup.wait_exit(EXIT_WAIT_S) == 0
        results = sup.results()
        assert results["processes"]["orphans_reaped"] >= 1
        _assert_clean(sup)


def test_child_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    child = {"name": "stubborn", "entrypoint": "tests.children:ignore_term"}
    with started(_specs_run(tmp_path, "stubborn", [child], stop_grace_s=0.5), tmp_path, "stubborn") as sup:
        sup.wait_event("child_state_changed", new="running")
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit(EXIT_WAIT_S) == 143
        stopped = sup.find("children_stopped")[0]
        assert stopped["killed"] >= 1
        assert 0.5 <= stopped["duration_s"] < 2.5
        assert sup.find("child_exited", exit_code=-9)
        _assert_clean(sup)


def test_second_sigint_skips_the_grace_but_still_reaps(tmp_path: Path) -> None:
    child = {"name": "stubborn", "entrypoint": "tests.children:ignore_term"}
    with started(_specs_run(tmp_path, "twice", [child], stop_grace_s=60), tmp_path, "twice") as sup:
        sup.wait_event("child_state_changed", new="running")
        sup.signal(signal.SIGINT)
        sup.wait_event("stop_requested")
        sup.signal(signal.SIGINT)
        assert sup.wait_exit(EXIT_WAIT_S) == 130
        assert sup.find("grace_skipped")
        assert sup.find("children_stopped")[0]["duration_s"] < 10
        assert sup.results()["failure_reasons"] == ["sigint"]
        _assert_clean(sup)


def test_critical_child_that_keeps_failing_fails_the_run(tmp_path: Path) -> None:
    child = {
        "name": "fragile",
        "entrypoint": "tests.children:crash",
        "critical": True,
        "restart": {"backoff_initial_s": 0.05, "max_failures": 3},
    }
    with started(_specs_run(tmp_path, "fragile", [child]), tmp_path, "fragile") as sup:
        assert sup.wait_exit(EXIT_WAIT_S) == 3
        assert len(sup.find("child_started")) == 3
        assert sup.find("child_state_changed", new="failed")
        assert sup.find("child_crashed")
        assert sup.results()["outcome"] == "error"
        assert "critical_child_failed" in sup.results()["failure_reasons"]
        _assert_clean(sup)


def test_deadline_passing_gives_124_and_a_clean_audit(tmp_path: Path) -> None:
    argv = run_argv("deadline", tmp_path / "runs", "--demo-streams", "3", "--demo-duration", "60", "--timeout", "1.5")
    with started(argv, tmp_path, "deadline") as sup:
        assert sup.wait_exit(EXIT_WAIT_S) == 124
        results = sup.results()
        assert results["outcome"] == "timeout"
        assert results["failure_reasons"] == ["deadline_exceeded"]
        assert sup.find("phase_finished", phase="cleanup")
        _assert_clean(sup)


def test_sigterm_stops_cleanly_and_says_why(tmp_path: Path) -> None:
    argv = run_argv("term", tmp_path / "runs", "--demo-streams", "4", "--demo-duration", "60")
    with started(argv, tmp_path, "term") as sup:
        sup.wait_event("child_state_changed", new="running", count=4)
        sup.signal(signal.SIGTERM)
        # Exited within EXIT_WAIT_S, a third of the streams' 60 s: the signal ended the run. A
        # wall-clock bound of the 2 s stop grace plus 3 s failed at 5.2 s on a loaded machine;
        # the grace is the escalation's to prove (tests/common/test_processes.py).
        assert sup.wait_exit(EXIT_WAIT_S) == 143
        results = sup.results()
        assert results["outcome"] == "cancelled"
        assert results["failure_reasons"] == ["sigterm"]
        assert results["processes"]["spawned"] == results["processes"]["reaped"] == 4
        assert all(c["stats"]["lines"] > 0 for c in results["children"])
        _assert_clean(sup)


def test_sigkilled_supervisor_leaves_nothing_within_two_seconds(tmp_path: Path) -> None:
    argv = run_argv("killed", tmp_path / "runs", "--demo-streams", "3", "--demo-duration", "60")
    with started(argv, tmp_path, "killed") as sup:
        sup.wait_event("child_state_changed", new="running", count=3)
        children = sup.child_pids()
        transports = [e["transport_pid"] for e in sup.find("demo_stream_started")]
        assert processes.with_run_tag("killed"), "the transports carry the run tag"
        sup.signal(signal.SIGKILL)
        sup.wait_exit(5)
        wait_for(
            lambda: not processes.with_run_tag("killed") and not processes.alive_pids(children + transports),
            2.0,
            "every process of the killed run to exit",
        )


def test_bad_arguments_exit_2_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from supervisor.cli import main

    assert main(["run", "--run-id", "../escape", "--log-dir", str(tmp_path)]) == 2
    assert "--run-id" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", "--log-dir", str(blocker / "sub")]) == 2
    assert "--log-dir" in capsys.readouterr().err
