"""The canary's decisions without processes: slots, config, budgets, retention, verdicts."""

import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from common import inputs
from common.outcome import Outcome
from supervisor.canary import budgets, config, retention, runs, schedule
from supervisor.canary.cli import build_parser
from supervisor.canary.config import CanaryConfig, ConfigError
from supervisor.canary.metrics import ProbeMetrics
from tests.helpers.clock import FakeClock
from tests.report.crafted import valid_results, write_run

# -- schedule ------------------------------------------------------------------------------


def test_next_start_is_the_previous_slot_plus_the_interval() -> None:
    assert schedule.next_slot(100.0, 60.0, now=130.0) == schedule.Slot(160.0, 0)


def test_a_run_ending_exactly_on_the_slot_starts_the_next_one_on_time() -> None:
    assert schedule.next_slot(100.0, 60.0, now=160.0) == schedule.Slot(160.0, 0)


def test_an_overrun_skips_the_slots_that_passed_and_stays_on_the_grid() -> None:
    assert schedule.next_slot(100.0, 60.0, now=161.0) == schedule.Slot(220.0, 1)
    assert schedule.next_slot(100.0, 60.0, now=290.0) == schedule.Slot(340.0, 3)


def test_slots_do_not_drift_with_run_length() -> None:
    clock, slot, starts = FakeClock(0.0), 0.0, []
    for run_length in (10.0, 59.9, 0.1, 30.0):
        starts.append(slot)
        clock.now = slot + run_length
        slot = schedule.next_slot(slot, 60.0, clock()).at
    assert starts == [0.0, 60.0, 120.0, 180.0]


# -- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h", 3600), ("900", 900), ("0.5", 0.5), ("250ms", 0.25), ("2d", 172800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert inputs.seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "0", "15 fortnights", "1h30"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|> 0"):
        inputs.seconds(text)


def test_sizes() -> None:
    assert config.parse_size("10G") == 10 * 1024**3
    assert config.parse_size("500MiB") == 500 * 1024**2
    assert config.parse_size(4096) == 4096
    with pytest.raises(ValueError, match="bytes"):
        config.parse_size("lots")


def test_flags_win_over_the_file_which_wins_over_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('interval = "1h"\nkeep_runs = 5\nunit_timeout_stop = 120\nrun_args = ["--cluster", "local"]\n')
    environ = {"STATE_DIRECTORY": "/var/lib/iris-smoke:/other", "IRIS_SMOKE_TIMEOUT_STOP_SEC": "90"}
    resolved = config.resolve({"keep_runs": 9}, path, environ)
    assert resolved.interval_s == 3600
    assert resolved.keep_runs == 9
    assert resolved.unit_timeout_stop_s == 120
    assert resolved.state_dir == Path("/var/lib/iris-smoke")
    assert resolved.run_args == ("--cluster", "local")
    assert config.resolve({}, None, environ).unit_timeout_stop_s == 90


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('interval = "soon"', "interval"),
        ("keep_runs = 0", "keep_runs"),
        ('keep_runs = "many"', "keep_runs"),
        ('listen = "0.0.0.0:70000"', "listen"),
        ('cluster_name = ""', "cluster_name"),
        ('run_args = "--cluster local"', "run_args"),
        ("run_command = []", "run_command"),
        ("colour = 1", "colour"),
        ("interval = ", "not valid TOML"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=field) as caught:
        config.load_file(path)
    assert str(path) in str(caught.value)


def test_flag_errors_name_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--cleanup-budget", "a while"])
    assert exited.value.code == 2 and "argument --cleanup-budget: must be" in capsys.readouterr().err


# -- budgets -------------------------------------------------------------------------------


def test_budgets_that_nest_pass_quietly() -> None:
    check = budgets.check(CanaryConfig(interval_s=900, run_timeout_s=600, cleanup_budget_s=60, unit_timeout_stop_s=90))
    assert check.errors == [] and check.warnings == []


def test_cleanup_budget_must_exceed_the_child_stop_grace() -> None:
    check = budgets.check(CanaryConfig(cleanup_budget_s=2.0), child_stop_grace_s=2.0)
    assert len(check.errors) == 1 and "2 s" in check.errors[0]


def test_cleanup_budget_must_fit_in_timeout_stop_sec_with_a_margin() -> None:
    check = budgets.check(CanaryConfig(cleanup_budget_s=60, unit_timeout_stop_s=64))
    assert len(check.errors) == 1 and "60 s" in check.errors[0] and "64 s" in check.errors[0]
    assert budgets.check(CanaryConfig(cleanup_budget_s=60, unit_timeout_stop_s=65)).errors == []


def test_runs_longer_than_the_interval_only_warn() -> None:
    check = budgets.check(CanaryConfig(interval_s=60, run_timeout_s=60, cleanup_budget_s=10))
    assert check.errors == [] and "skip" in check.warnings[0]


# -- retention -----------------------------------------------------------------------------


def _runs(*sizes: int) -> list[retention.RunDir]:
    return [retention.RunDir(f"2026010{i}T000000.000Z-abcdef", size) for i, size in enumerate(sizes)]


def test_retention_by_count_deletes_the_oldest() -> None:
    runs_ = _runs(1, 1, 1, 1)
    assert retention.plan(runs_, keep_runs=2, max_bytes=100) == runs_[:2]


def test_retention_by_bytes_deletes_the_oldest_until_it_fits() -> None:
    runs_ = _runs(50, 30, 20, 10)
    assert retention.plan(runs_, keep_runs=10, max_bytes=35) == runs_[:2]


def test_retention_never_deletes_the_running_one_nor_the_newest() -> None:
    runs_ = _runs(50, 30, 20)
    assert retention.plan(runs_, keep_runs=1, max_bytes=1, protect=[runs_[0].name]) == [runs_[1]]
    assert retention.plan(_runs(500), keep_runs=1, max_bytes=1) == []


def test_retention_only_touches_run_directories(tmp_path: Path) -> None:
    names = ["20260101T000000.000Z-aaaaaa", "20260102T000000.000Z-bbbbbb", "20260103T000000Z-cccccc"]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "events.jsonl").write_bytes(b"x" * 100)
    (tmp_path / "notes").mkdir()
    (tmp_path / "README").write_text("keep me")
    deleted = retention.Retention(tmp_path).apply(keep_runs=1, max_bytes=10**9)
    assert [r.name for r in deleted] == names[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["20260103T000000Z-cccccc", "README", "notes"]


# -- verdicts ------------------------------------------------------------------------------


def test_run_ids_sort_by_start_time() -> None:
    ids = [runs.new_run_id(t) for t in (1_700_000_000.001, 1_700_000_000.2, 1_700_000_001.0)]
    assert ids == sorted(ids)
    assert all(runs.RUN_ID_PATTERN.match(i) for i in ids)
    # That `iris-smoke run --run-id` accepts them is proven by the real runs in test_daemon.py.


def test_run_environment_has_a_fresh_tag_and_no_systemd_protocol() -> None:
    environ = {"PATH": "/bin", "NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1", "IRIS_SMOKE_RUN_ID": "daemon"}
    assert runs.run_environment(environ, "r1") == {"PATH": "/bin", "IRIS_SMOKE_RUN_ID": "r1"}


@pytest.mark.parametrize(
    ("exit_code", "outcome"),
    [(0, "passed"), (1, "failed"), (2, "error"), (3, "error"), (124, "timeout"), (143, "cancelled"), (-9, "error")],
)
def test_without_results_json_the_exit_code_decides(tmp_path: Path, exit_code: int, outcome: str) -> None:
    summary = runs.summarize("r", tmp_path, exit_code, 1.0, leaked=0, overran=False)
    assert summary.outcome == outcome and not summary.results_found


def _stream_gauges(summary: runs.RunSummary) -> dict[str, float]:
    metrics = ProbeMetrics(None)
    metrics.record_run(summary)
    return {
        s.name: s.value
        for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())
        for s in f.samples
        if s.name.startswith(("iris_smoke_last_run_stream", "iris_smoke_last_run_leaked"))
    }


def test_results_json_is_read_as_the_run_result_the_run_wrote(tmp_path: Path) -> None:
    """Its verdict, tests, streams (a `stale` flag, as a stream's last PROGRESS says it, or a count) and leaks."""
    results = valid_results() | {"outcome": "failed", "duration_s": 12.5, "failure_reasons": ["test_failed"]}
    results["tests"] = [{"name": "a", "outcome": "passed", "error": "", "duration_s": 1}, {"name": "b",
                        "outcome": "failed", "error": "x"}]  # fmt: skip
    stream = results["streams"][0]
    results["streams"] = [stream | {"lines": 3, "gaps": 2, "reconnects": 0, "stale": True},
                          stream | {"lines": None, "gaps": None, "reconnects": 4, "stale": None}]  # fmt: skip
    results["processes"]["leaked"] = 1
    write_run(tmp_path, results)
    summary = runs.summarize("r", tmp_path, 1, 13.0, leaked=0, overran=False)
    assert summary.outcome is Outcome.FAILED and summary.duration_s == 12.5 and summary.results_found
    assert summary.reasons == ["test_failed"] and summary.leaked == 1
    assert [(t.name, t.outcome is Outcome.PASSED, t.duration_s) for t in summary.tests] == [
        ("a", True, 1.0), ("b", False, None)
    ]  # fmt: skip
    assert _stream_gauges(summary) == {
        "iris_smoke_last_run_streams": 2, "iris_smoke_last_run_stream_lines": 3, "iris_smoke_last_run_stream_gaps": 2,
        "iris_smoke_last_run_stream_reconnects": 4, "iris_smoke_last_run_streams_stale": 1,
        "iris_smoke_last_run_leaked_processes": 1,
    }  # fmt: skip


def test_a_results_json_that_is_no_run_result_is_not_read_and_the_exit_code_decides(tmp_path: Path) -> None:
    """Read with the one reader every view uses: a file of another shape (here fields missing, a test not an
    object, gaps a list) is no verdict; the canary says why and carries on with the exit code."""
    (tmp_path / "results.json").write_text(
        json.dumps(
            {
                "outcome": "passed",
                "duration_s": 12.5,
                "failure_reasons": ["test_failed"],
                "tests": [{"name": "a", "outcome": "passed", "duration_s": 1}, {"name": "b"}, "junk"],
                "streams": [{"lines": 3, "gaps": [1, 2], "stale": True}, {"reconnects": 4}],
                "processes": {"leaked": 1},
            }
        )
    )
    summary = runs.summarize("r", tmp_path, 1, 13.0, leaked=0, overran=False)
    assert summary.outcome is Outcome.FAILED and summary.duration_s == 13.0 and not summary.results_found
    assert summary.tests == () and summary.leaked == 0 and summary.reasons == []
    assert summary.results_problem == f"{tmp_path}/results.json: schema_version: missing", summary.results_problem


def test_a_leak_found_by_the_daemon_makes_a_passed_run_an_error(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text('{"outcome": "passed"}')
    summary = runs.summarize("r", tmp_path, 0, 1.0, leaked=2, overran=False)
    assert summary.outcome is Outcome.ERROR and summary.leaked == 2 and "process_leak" in summary.reasons


def test_garbage_results_json_falls_back_to_the_exit_code(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{half")
    assert runs.summarize("r", tmp_path, 0, 1.0, leaked=0, overran=False).outcome is Outcome.PASSED
