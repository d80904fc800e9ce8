"""The canary daemon with real processes: runs on a grid, retention, metrics, signals, lock, budgets."""

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.canary.daemon import FAKE_RUN, canary_argv, notify_socket, started
from tests.helpers import processes
from tests.helpers.supervisor_proc import REPO_ROOT
from tests.helpers.waiting import wait_for

EXIT_WAIT_S = 30.0
INTERVAL_S = 1.5
DEMO_RUN = ("--", "--demo-streams", "1", "--demo-duration", "0.2")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples by name and labels but `cluster`, which every one carries: the state dir's name by default."""
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    assert all(s.labels.get("cluster") == "state" for s in samples), samples
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "cluster"))): s.value for s in samples}


def _promtool_check(path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package (apt-get install prometheus)"
    checked = subprocess.run([promtool, "check", "metrics"], input=path.read_bytes(), capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


def _oneshot(*argv: str, env: dict[str, str] | None = None) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(list(argv), cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, env=env, check=False)


def test_five_real_runs_on_the_grid_with_retention_and_metrics(tmp_path: Path) -> None:
    args = ("--interval", f"{INTERVAL_S}s", "--keep-runs", "3", "--max-runs", "5", "--run-timeout", "20")
    with started(tmp_path, *args, "--cleanup-budget", "5", *DEMO_RUN) as canary:
        assert canary.wait_exit(EXIT_WAIT_S) == 0
        completed = canary.find("run_completed")
        assert [e["outcome"] for e in completed] == ["passed"] * 5, completed
        assert all(e["leaked"] == 0 and e["results_found"] for e in completed)
        # On the grid, however slow the machine: a run that overran skipped the slots it
        # covered rather than starting late, so each start's slot is the previous one's plus
        # one plus the slots skipped in between (the daemon's own clock, not log timestamps).
        # The last run may overrun too: the slots it skipped come after the last start.
        slot, skipped, before_last = -1, 0, 0
        for event in canary.events():
            if event["event"] == "slot_skipped":
                skipped += event["skipped"]
            elif event["event"] == "run_spawned":
                assert event["slot"] == slot + 1 + skipped, (event, slot, skipped)
                assert 0 <= event["late_s"] < INTERVAL_S, event
                slot, before_last, skipped = event["slot"], before_last + skipped, 0
        assert slot == 4 + before_last
        skipped += before_last
        ids = canary.run_ids()
        runs = canary.state_dir / "runs"
        assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == ids[-3:]
        assert all(run_id in (runs / "index.html").read_text() for run_id in ids[-3:]), "the history page"
        results = json.loads((canary.state_dir / "runs" / ids[-1] / "results.json").read_text())
        assert results["outcome"] == "passed" and results["processes"]["leaked"] == 0
        stopped = canary.find("canary_stopped")[0]
        assert stopped["reason"] == "max_runs" and stopped["grpc_imported"] is False
        textfile = canary.state_dir / "metrics" / "iris_smoke.prom"
        samples = _samples(textfile.read_text())
        assert samples[("iris_smoke_runs_total", (("outcome", "passed"),))] == 5
        assert samples[("iris_smoke_last_run_outcome", (("outcome", "passed"),))] == 1
        assert samples[("iris_smoke_last_run_outcome", (("outcome", "failed"),))] == 0
        assert samples[("iris_smoke_last_success_timestamp_seconds", ())] > 0
        assert samples[("iris_smoke_slots_skipped_total", ())] == skipped
        _promtool_check(textfile)
        assert not list((canary.state_dir / "metrics").glob("*.prom.*")), "temporary textfile left"


def test_results_json_fields_become_metrics_and_leaks_are_found(tmp_path: Path) -> None:
    """Tests and streams from results.json, and a run that leaves a tagged process: killed, counted, error."""
    args = ("--interval", "1h", "--max-runs", "1", "--run-command", FAKE_RUN)
    with started(tmp_path, *args, env={"FAKE_RUN_LEAK": "1"}) as canary:
        assert canary.wait_exit(EXIT_WAIT_S) == 0
        run_id = canary.run_ids()[0]
        assert processes.with_run_tag(run_id) == []
        leaked = canary.find("process_leaked")
        assert len(leaked) == 1 and leaked[0]["run"] == run_id
        done = canary.find("run_completed")[0]
        assert done["outcome"] == "error" and "process_leak" in done["reasons"] and done["leaked"] == 1
        textfile = canary.state_dir / "metrics" / "iris_smoke.prom"
        samples = _samples(textfile.read_text())
        assert samples[("iris_smoke_test_success", (("test", "submit"),))] == 1
        assert samples[("iris_smoke_test_success", (("test", "gang"),))] == 0
        assert samples[("iris_smoke_test_duration_seconds", (("test", "gang"),))] == 1.5
        assert samples[("iris_smoke_last_run_stream_lines", ())] == 15
        assert samples[("iris_smoke_last_run_stream_gaps", ())] == 1
        assert samples[("iris_smoke_last_run_stream_reconnects", ())] == 2
        assert samples[("iris_smoke_last_run_streams_stale", ())] == 1
        assert samples[("iris_smoke_last_run_leaked_processes", ())] == 1
        assert samples[("iris_smoke_runs_total", (("outcome", "error"),))] == 1
        _promtool_check(textfile)


def test_sigterm_during_a_run_lets_its_cleanup_finish(tmp_path: Path) -> None:
    args = ("--interval", "1h", "--cleanup-budget", "10", *DEMO_RUN[:-1], "60")
    with notify_socket(tmp_path) as listener:
        with started(tmp_path, *args, env={"NOTIFY_SOCKET": listener.address}) as canary:
            run_id = canary.wait_event("run_spawned")[0]["run"]
            events = canary.state_dir / "runs" / run_id / "events.jsonl"

            def run_child_running() -> bool:
                return events.exists() and '"new":"running"' in events.read_text()

            wait_for(run_child_running, 15, "the run's stream child running")
            canary.signal(signal.SIGTERM)
            assert canary.wait_exit(EXIT_WAIT_S) == 0
            results = json.loads((canary.state_dir / "runs" / run_id / "results.json").read_text())
            assert results["outcome"] == "cancelled" and results["failure_reasons"] == ["sigterm"]
            assert results["processes"]["leaked"] == 0
            done = canary.find("run_completed")[0]
            assert done["outcome"] == "cancelled" and done["exit_code"] == 143
            assert canary.find("stop_requested")[0]["run"] == run_id
            assert not canary.find("run_killed")
            assert processes.with_run_tag(run_id) == []
            assert listener.wait("STOPPING")["STOPPING"] == "1"
            assert int(listener.wait("EXTEND_TIMEOUT_USEC")["EXTEND_TIMEOUT_USEC"]) > 10_000_000
        # The lock went with the daemon: a new one takes it at once.
        with started(tmp_path, "--interval", "1h", "--run-command", FAKE_RUN, name="next") as again:
            again.signal(signal.SIGTERM)
            assert again.wait_exit(EXIT_WAIT_S) == 0


def test_sighup_reloads_and_a_bad_config_keeps_the_old_one(tmp_path: Path) -> None:
    config = tmp_path / "canary.toml"
    config.write_text('interval = "1h"\nkeep_runs = 5\n')
    args = ("--config", str(config), "--run-command", FAKE_RUN)
    with started(tmp_path, *args) as canary:
        canary.wait_event("run_completed")
        config.write_text('interval = "soon"\nkeep_runs = 5\n')
        canary.signal(signal.SIGHUP)
        failed = canary.wait_event("config_reload_failed")[0]
        assert "interval" in failed["reason"] and "soon" in failed["reason"]
        assert failed["kept"] == "previous configuration"
        config.write_text('interval = "2h"\nkeep_runs = 7\n')
        canary.signal(signal.SIGHUP)
        reloaded = canary.wait_event("config_reloaded")[0]
        assert sorted(reloaded["changed"]) == ["interval_s", "keep_runs"]
        port = canary.find("endpoint_serving")[0]["port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            scraped = _samples(response.read().decode())
        assert scraped[("iris_smoke_canary_config_reloads_total", (("result", "failed"),))] == 1
        assert scraped[("iris_smoke_canary_config_reloads_total", (("result", "ok"),))] == 1
        assert scraped[("iris_smoke_runs_total", (("outcome", "passed"),))] == 1
        canary.signal(signal.SIGTERM)
        assert canary.wait_exit(EXIT_WAIT_S) == 0


def test_a_second_daemon_on_the_same_state_dir_exits_2_naming_the_holder(tmp_path: Path) -> None:
    with started(tmp_path, "--interval", "1h", "--run-command", FAKE_RUN) as canary:
        second = _oneshot(*canary_argv(canary.state_dir, "--interval", "1h"))
        assert second.returncode == 2, second.stderr
        assert f"pid {canary.pid}" in second.stderr and "canary.lock" in second.stderr
        assert not [e for e in canary.all_events() if e["pid"] != canary.pid], "the refused daemon logged"


def test_budgets_that_cannot_nest_are_refused_naming_both_values(tmp_path: Path) -> None:
    state = tmp_path / "state"
    too_short = _oneshot(*canary_argv(state, "--cleanup-budget", "1.5"))
    assert too_short.returncode == 2
    assert "1.5 s" in too_short.stderr and "2 s" in too_short.stderr
    too_long = _oneshot(*canary_argv(state, "--cleanup-budget", "60", "--unit-timeout-stop", "30"))
    assert too_long.returncode == 2
    assert "60 s" in too_long.stderr and "30 s" in too_long.stderr and "TimeoutStopSec" in too_long.stderr
    from_unit = _oneshot(
        *canary_argv(state, "--cleanup-budget", "60"),
        env=os.environ | {"IRIS_SMOKE_TIMEOUT_STOP_SEC": "45s"},
    )
    assert from_unit.returncode == 2 and "45 s" in from_unit.stderr
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("keep_runs = 0\n")
    refused = _oneshot(*canary_argv(state, "--config", str(bad_config)))
    assert refused.returncode == 2 and "keep_runs" in refused.stderr
    bad_flag = _oneshot(*canary_argv(state, "--interval", "15 fortnights"))
    assert bad_flag.returncode == 2 and "--interval" in bad_flag.stderr


def test_an_overrunning_run_is_killed_and_the_next_slots_skipped(tmp_path: Path) -> None:
    """A run past its timeout + cleanup budget is KILLed (timeout); the slots it overran are skipped."""
    args = ("--interval", "1s", "--run-timeout", "0.3", "--cleanup-budget", "2.2", "--max-runs", "1")
    with started(tmp_path, *args, "--run-command", "sh -c 'exec sleep 60' wedged-run") as canary:
        assert canary.wait_exit(EXIT_WAIT_S) == 0
        assert canary.find("run_killed")[0]["reason"] == "run_overran"
        done = canary.find("run_completed")[0]
        assert done["outcome"] == "timeout" and done["exit_code"] == -9
        skipped = canary.find("slot_skipped")
        assert skipped and skipped[0]["skipped"] >= 2
        assert any(e["event"] == "budget_warning" for e in canary.events())


def test_the_canary_never_imports_grpc() -> None:
    checked = _oneshot(sys.executable, "-c", "import supervisor.canary.cli, sys; print('grpc' in sys.modules)")
    assert checked.stdout.strip() == "False", checked.stderr
