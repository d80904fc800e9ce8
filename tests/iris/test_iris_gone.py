"""`iris-smoke run` attached to a real Iris whose log server or controller goes away mid-run,
and whose controller lacks ListEndpoints (the follower falls back to the controller's address).

Everything is real (the supervisor, a real Iris local cluster, its log server, our children)
but the proxy in front of the controller (tests/helpers/connect_proxy.py), which closes a log
server, denies a method or routes log calls.
"""

import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from common.processes import signal_group
from tests.helpers import processes
from tests.helpers.connect_proxy import running_proxy
from tests.helpers.iris import running_iris_cluster
from tests.helpers.supervisor_proc import SupervisorProc, run_argv, started
from tests.helpers.waiting import wait_for

TIMEOUT_S = 60.0  # the run's --timeout
EXIT_S = TIMEOUT_S + 30.0  # a bound for the test's wait, past the run's deadline and cleanup
STOP_S = 30.0  # Iris stopping its workers, tasks and log server (tests.helpers.iris.STOP_TIMEOUT_S)
# The job ticks until the test releases it (a file it creates: the task runs on this host), or
# by itself after 2 minutes, so the log server goes away while it runs however slow the machine.
TICKS = """
[run]
tests = []

[[tests]]
name = "ticks"
argv = ["sh", "-c", "i=0; while [ ! -e {release} ] && [ $i -lt 240 ]; do echo tick $i; i=$((i+1)); sleep 0.5; done"]
"""
# A stream is lost after this many followers in a row failed (supervisor.streams.LOST_AFTER_FAILED_CONNECTS);
# the first to end after the loss had delivered, so it counts none.
LOST_AFTER_DISCONNECTS = 3
# The controller's outage bound the run is given (`[verdict] controller_outage_s`; 30 s by default).
OUTAGE_S = 5.0


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"run-{uuid.uuid4().hex[:8]}.toml"
    path.write_text(text)
    return str(path)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _lines_with(run_dir: Path, text: str) -> int:
    files = (run_dir / "logs" / "vms").glob("*.jsonl")
    return sum(text in r["line"] for p in files for r in _jsonl(p))


def _assert_nothing_left(sup: SupervisorProc) -> None:
    results = sup.results()
    assert results["processes"]["leaked"] == 0 and results["processes"]["zombies"] == 0
    assert processes.with_run_tag(sup.run_id) == []


def _attach(run_id: str, tmp_path: Path, url: str, *flags: str) -> list[str]:
    return run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", url,
                    "--timeout", f"{TIMEOUT_S:.0f}", "--discovery-interval", "1", *flags)  # fmt: skip


def _every_stream_cut_off(sup: SupervisorProc) -> bool:
    """Every stream's followers failed often enough since the loss for it to count as lost."""
    names = {str(e["child"]) for e in sup.find("child_started") if str(e["child"]).startswith("stream:")}
    ends = [str(e.get("child")) for e in sup.find("stream_disconnected")]
    return bool(names) and all(ends.count(name) >= LOST_AFTER_DISCONNECTS for name in names)


def _every_stream_has_lines(sup: SupervisorProc) -> bool:
    files = sup.stream_files()
    return len(files) >= 2 and all(p.exists() and p.stat().st_size > 0 for p in files)


def test_the_log_server_going_away_mid_tests_fails_the_run_with_stream_lost(tmp_path: Path) -> None:
    """The log server goes away while a job runs (every stream had lines): the run ends long before its
    deadline with exit 1 and `stream_lost` (its streams' last lines are not in the run), never `passed`;
    every stream says it was cut off and why; the job itself passed; nothing is left behind."""
    run_id = f"logs-gone-{uuid.uuid4().hex[:8]}"
    release = tmp_path / "release-ticks"
    with running_iris_cluster(tmp_path) as cluster, running_proxy(cluster.url, "--log-proxy") as proxy:
        config = _config(tmp_path, TICKS.replace("{release}", str(release)))
        with started(_attach(run_id, tmp_path, proxy.url, "--config", config), tmp_path, run_id) as sup:
            sup.wait_event("job_launched", timeout_s=30)
            wait_for(lambda: _lines_with(sup.run_dir, "BUILDING→RUNNING"), 30, "the task's start in a worker's stream")
            wait_for(lambda: _every_stream_has_lines(sup), 30, "a line in every stream")
            proxy.log_server_goes_away()
            gone_at = time.monotonic()
            wait_for(lambda: _every_stream_cut_off(sup), 30, "every stream's followers failing")
            assert not sup.find("test_finished"), "the job ended before its streams were cut off"
            release.touch()  # the job may end now: the run ends with it
            code = sup.wait_exit(EXIT_S)
            took_s = time.monotonic() - gone_at
            results = sup.results()
            _assert_nothing_left(sup)
    assert code == 1 and results["failure_reasons"] == ["stream_lost"], (code, results["failure_reasons"])
    assert took_s < TIMEOUT_S / 2 and results["duration_s"] < TIMEOUT_S, (took_s, results["duration_s"])
    assert [t["outcome"] for t in results["tests"]] == ["passed"]
    lost = {e["child"]: e["last_error"] for e in sup.find("stream_lost")}
    streams = {s["name"]: s for s in results["streams"]}
    assert set(lost) == set(streams) and len(streams) >= 2, (lost, streams)
    assert all("FetchLogs" in error and "HTTP 502" in error for error in lost.values()), lost
    assert all(s["failed_connects"] >= 2 and s["lines"] > 0 for s in streams.values()), streams


SLEEPS = """
[run]
tests = []

[[tests]]
name = "sleeps"
argv = ["sleep", "600"]
"""


def test_the_controller_going_away_mid_tests_in_attach_mode_is_a_clear_failure(tmp_path: Path) -> None:
    """The attached Iris is stopped while a `sleep 600` job runs: once the controller has been unreachable
    for `[verdict] controller_outage_s` the run ends (exit 3, `controller_unavailable`, its streams lost),
    well before its deadline, and nothing of it is left behind."""
    run_id = f"ctl-gone-{uuid.uuid4().hex[:8]}"
    with running_iris_cluster(tmp_path) as cluster:
        config = _config(tmp_path, f"[verdict]\ncontroller_outage_s = {OUTAGE_S}\n{SLEEPS}")
        with started(_attach(run_id, tmp_path, cluster.url, "--config", config), tmp_path, run_id) as sup:
            sup.wait_event("job_launched", timeout_s=30)
            sup.wait_event("job_state_changed", new="running", timeout_s=30)
            # Only a stream that delivered can lose its source: the controller's must have a line
            # before the stop (under load its first page can come after the job runs).
            controller_log = sup.run_dir / "logs" / "controller.jsonl"
            wait_for(lambda: controller_log.exists() and controller_log.stat().st_size > 0, 30, "a controller log line")
            signal_group(cluster.popen.pid, signal.SIGTERM)  # its teardown then finds it stopped, and checks
            cluster.popen.wait(timeout=STOP_S)
            gone_at = time.monotonic()
            code = sup.wait_exit(EXIT_S)
            took_s = time.monotonic() - gone_at
            results = sup.results()
            print("exit", code, "failure_reasons", results["failure_reasons"], f"{took_s:.1f} s after the stop")
            _assert_nothing_left(sup)
    reasons = results["failure_reasons"]
    assert code == 3 and reasons[0] == "controller_unavailable", (code, reasons)
    assert "deadline_exceeded" not in reasons and took_s < TIMEOUT_S - 10, (reasons, took_s)
    # It waited out the configured bound, not the default's 30 s.
    outage = results["controller_outage"]
    assert OUTAGE_S <= outage["unavailable_for_s"] < 30, outage
    # Its log server went with it: every stream lost its source.
    assert "stream_lost" in reasons and "internal_error" not in reasons
