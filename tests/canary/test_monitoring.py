"""The canary's Prometheus surface: new series from a real run, alert rules that pass promtool's
own unit tests, and a dashboard and rules that name only metrics the canary really exports."""

import json
import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from supervisor.canary.metrics import LAST_SUCCESS_NAME, TEXTFILE_NAME
from tests.canary.daemon import started
from tests.helpers.supervisor_proc import REPO_ROOT

MONITORING = REPO_ROOT / "monitoring"
# Not the recording rules (`probe:iris_smoke_..._seconds:median7d`), whose names are not scraped.
METRIC_NAME = re.compile(r"(?<![\w:])iris_smoke_[a-z0-9_]+")
EXIT_WAIT_S = 90.0


def _promtool(*argv: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package (apt-get install prometheus)"
    done = subprocess.run([promtool, *argv], cwd=MONITORING, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _samples(path: Path) -> dict[str, float]:
    """Sample name (with _bucket, _total...) -> value of its last label set; enough for unlabelled series."""
    return {s.name: s.value for f in text_string_to_metric_families(path.read_text()) for s in f.samples}


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return exprs + [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]


RULE_TESTS = ("alerts.test.yml", "alerts.history.test.yml")


def test_alert_rules_load_and_pass_their_unit_tests() -> None:
    _promtool("check", "rules", "alerts.yml")
    _promtool("test", "rules", *RULE_TESTS)


def test_every_alert_has_a_promtool_case_where_it_fires() -> None:
    alerts = re.findall(r"- alert: (\w+)", (MONITORING / "alerts.yml").read_text())
    cases = "".join((MONITORING / name).read_text() for name in RULE_TESTS)
    firing = re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", cases)
    assert alerts and set(alerts) <= set(firing), sorted(set(alerts) - set(firing))


def test_the_dashboard_and_the_alerts_name_the_cluster() -> None:
    """Several canaries may share a bastion: every panel selects and splits by `cluster`, every
    alert says which cluster it is about."""
    for expr in _dashboard_expressions():
        assert 'cluster=~"$cluster"' in expr or expr.startswith("label_values(iris_smoke_canary_start_time_seconds,")
    summaries = re.findall(r'summary: "(.*)"', (MONITORING / "alerts.yml").read_text())
    # absent() has no series to take a cluster from: "no target" names the job, and says so.
    summaries = [s for s in summaries if not s.startswith("no iris-smoke canary target")]
    assert summaries and all("{{ $labels.cluster }}" in s for s in summaries), summaries


def test_a_real_run_exports_latencies_histograms_and_a_last_success_that_survives_a_restart(tmp_path: Path) -> None:
    with started(tmp_path, "--interval", "1h", "--max-runs", "1", "--run-timeout", "60", name="first") as canary:
        assert canary.wait_exit(EXIT_WAIT_S) == 0, canary.output.read_text()[-3000:]
        assert [e["outcome"] for e in canary.find("run_completed")] == ["passed"]
    textfile = tmp_path / "state" / "metrics" / TEXTFILE_NAME
    first = _samples(textfile)
    assert first["iris_smoke_run_duration_seconds_count"] == 1
    assert first["iris_smoke_run_in_progress"] == 0 and first["iris_smoke_consecutive_failed_runs"] == 0
    # The standard suite submits five jobs, and the local autoscaler boots a TPU slice for them.
    assert first["iris_smoke_scheduling_latency_seconds_count"] >= 5
    assert first["iris_smoke_scale_up_latency_seconds_count"] >= 1
    assert 0 < first["iris_smoke_last_run_scale_up_latency_seconds"] < 60
    assert 0 < first["iris_smoke_last_run_scheduling_latency_seconds"] < 60
    success = first["iris_smoke_last_success_timestamp_seconds"]
    assert float((tmp_path / "state" / LAST_SUCCESS_NAME).read_text()) == round(success, 3)

    # Plus the controller's vitals, exported once a controller_vitals fleet check has run (the
    # standard suite runs none; tests/canary/test_probes.py shows a probe's run exporting them).
    exported = set(first) | {"iris_smoke_controller_vital"}
    rules = (MONITORING / "alerts.yml").read_text()
    for expr in [*_dashboard_expressions(), rules]:
        unknown = set(METRIC_NAME.findall(expr)) - exported
        assert not unknown, f"not exported by the canary: {sorted(unknown)} in {expr[:200]}"

    # Restarted, with runs that fail (the run refuses its arguments): the last success stays.
    args = ("--interval", "1h", "--max-runs", "1", "--", "--tests", "no-such-test")
    with started(tmp_path, *args, name="second") as canary:
        assert canary.wait_exit(EXIT_WAIT_S) == 0, canary.output.read_text()[-3000:]
        assert [e["outcome"] for e in canary.find("run_completed")] == ["error"]
    second = _samples(textfile)
    assert second["iris_smoke_last_success_timestamp_seconds"] == round(success, 3)
    assert second["iris_smoke_consecutive_failed_runs"] == 1
    assert second["iris_smoke_canary_start_time_seconds"] > success
