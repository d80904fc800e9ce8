"""What `/healthz` says about the loop's state, what a cancelled run does to the metrics, and the
settings behind them: pure functions, no process."""

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from common.errors import ConfigError
from common.outcome import Outcome
from supervisor.canary import config, endpoint
from supervisor.canary.cli import build_parser
from supervisor.canary.endpoint import LoopState, ProbeState, health
from supervisor.canary.metrics import CanaryMetrics
from supervisor.canary.runs import LastRun, RunSummary, last_on_disk
from supervisor.results_file import from_verdict
from tests.helpers.clock import FakeClock
from tests.report.crafted import valid_results, write_run

NOW_UNIX = 1_800_000_000.0


def _state(outcome: Outcome | None, age_s: float = 60.0, loop_at: float = 100.0) -> LoopState:
    last = None
    if outcome is not None:
        last = LastRun("r1", outcome, ("sigterm",), NOW_UNIX - age_s, 12.5, Path("/state/runs/r1"))
    return LoopState(loop_at, "idle", (ProbeState("suite", 900.0, last),))


def test_a_passed_run_younger_than_two_intervals_is_healthy() -> None:
    code, body = health(_state(Outcome.PASSED, age_s=1799), 100.0, NOW_UNIX, "prod")
    assert code == 200 and body.healthy and body.reasons == ()
    run = body.probes["suite"].last_run
    assert run is not None
    assert run.outcome == "passed" and run.age_s == 1799 and run.duration_s == 12.5
    assert run.run_dir == "/state/runs/r1" and run.reasons == ("sigterm",)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (_state(None), "no_run: probe suite"),
        (LoopState(100.0, "starting", ()), "no_run: the loop has not published yet"),
        (_state(Outcome.FAILED), "not_passed: probe suite"),
        (_state(Outcome.CANCELLED), "not_passed: probe suite"),
        (_state(Outcome.PASSED, age_s=1801), "too_old: probe suite"),
    ],
)
def test_otherwise_503_with_the_reason(state: LoopState, reason: str) -> None:
    code, body = health(state, 100.0, NOW_UNIX, "prod")
    assert code == 503 and body.reasons == (reason,) and not body.healthy


def test_a_wedged_loop_is_503_after_the_bound_whatever_the_last_run() -> None:
    state = _state(Outcome.PASSED, loop_at=100.0)
    assert health(state, 100.0 + endpoint.STALL_S, NOW_UNIX, "prod")[0] == 200
    code, body = health(state, 100.0 + endpoint.STALL_S + 1, NOW_UNIX, "prod")
    assert code == 503 and body.reasons[0].startswith("loop_stalled: no loop wake for 31 s")


def _summary(outcome: Outcome, *tests: tuple[str, bool, float | None]) -> RunSummary:
    """A run whose results.json holds these tests (name, passed, duration)."""
    entries = [{"name": n, "outcome": "passed" if ok else "failed", "error": "", "duration_s": d} for n, ok, d in tests]
    return RunSummary("r", outcome, 0, 1.0, NOW_UNIX, results=from_verdict(valid_results() | {"tests": entries}))


def _scrape(metrics: CanaryMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_a_cancelled_run_leaves_the_streak_the_success_and_the_tests_alone(tmp_path: Path) -> None:
    metrics = CanaryMetrics("prod", tmp_path)
    metrics.record_run(_summary(Outcome.PASSED, ("submit", True, 1.0)))
    metrics.record_run(_summary(Outcome.FAILED, ("submit", False, 2.0)))
    before = _scrape(metrics)
    metrics.record_run(_summary(Outcome.CANCELLED, ("submit", False, None)))
    after = _scrape(metrics)
    for key in (
        ("iris_smoke_consecutive_failed_runs", (("cluster", "prod"),)),
        ("iris_smoke_test_success", (("cluster", "prod"), ("test", "submit"))),
        ("iris_smoke_test_duration_seconds", (("cluster", "prod"), ("test", "submit"))),
        ("iris_smoke_last_success_timestamp_seconds", (("cluster", "prod"),)),
    ):
        assert after[key] == before[key], key
    assert after[("iris_smoke_runs_total", (("cluster", "prod"), ("outcome", "cancelled")))] == 1
    # The streak survives a restart, like the last success.
    again = _scrape(CanaryMetrics("prod", tmp_path))
    assert again[("iris_smoke_consecutive_failed_runs", (("cluster", "prod"),))] == 1


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("127.0.0.1:9464", "127.0.0.1", 9464), ("[::]:0", "::", 0), ("0.0.0.0:80", "0.0.0.0", 80), (":9", "::", 9)],
)
def test_listen_addresses(text: str, host: str, port: int) -> None:
    assert build_parser().parse_args(["--listen", text]).listen == config.Listen(host, port)


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line the canary's parser refuses a flag with (exit 2)."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(list(argv))
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("text", ["localhost:9464", "::1:9464", "127.0.0.1", "1.2.3.4:70000"])
def test_bad_listen_addresses_name_the_flag(capsys: pytest.CaptureFixture[str], text: str) -> None:
    assert "--listen: expected HOST:PORT" in _refused(capsys, "--listen", text)


def test_the_cluster_label_defaults_to_the_state_directory_and_metrics_port_says_its_successor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert config.CanaryConfig(state_dir=Path("/var/lib/iris-smoke/prod-v5e")).cluster == "prod-v5e"
    assert "--cluster-name: expected a name" in _refused(capsys, "--cluster-name", "two words")
    old = tmp_path / "old.toml"
    old.write_text("metrics_port = 9477\n")
    with pytest.raises(ConfigError, match=r'metrics_port: replaced by listen \(listen = "127\.0\.0\.1:9477"\)'):
        config.load_file(old)


def test_a_restarted_daemon_knows_its_last_run_from_disk(tmp_path: Path) -> None:
    assert last_on_disk(tmp_path / "missing") is None
    for name, outcome in (("20260101T000000.000Z-aaaaaa", "passed"), ("20260101T001500.000Z-bbbbbb", "failed")):
        results = {"outcome": outcome, "started_at": "2026-01-01T00:15:00.000Z", "duration_s": 3.5}
        write_run(tmp_path / name, valid_results() | results)
    (tmp_path / "20260101T003000.000Z-cccccc").mkdir()  # the run a crash cut short: no verdict
    last = last_on_disk(tmp_path)
    assert last is not None and last.run_id == "20260101T001500.000Z-bbbbbb" and last.outcome is Outcome.FAILED
    assert last.reasons == ("test_failed",) and last.duration_s == 3.5


def test_the_server_thread_answers_503_when_the_loop_stops_publishing() -> None:
    """Over HTTP, from the server thread: the loop's last state, judged with the loop's own clock."""
    clock = FakeClock(100.0)
    server = endpoint.Endpoint(CanaryMetrics("prod").registry, config.Listen("127.0.0.1", 0), "prod", clock)
    try:
        server.publish(_state(Outcome.PASSED, loop_at=100.0))
        url = f"http://127.0.0.1:{server.port}/healthz"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200 and json.loads(response.read())["healthy"] is True
        clock.now += endpoint.STALL_S + 1  # the loop published nothing since
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 503
        assert json.loads(refused.value.read())["reasons"][0].startswith("loop_stalled")
    finally:
        server.close()
