"""The version is reported everywhere from one place; a run ends with one sentence for people."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import metadata

import orjson
from prometheus_client import generate_latest

from supervisor.canary.metrics import CanaryMetrics
from tests.helpers.supervisor_proc import REPO_ROOT
from tests.report.conftest import FinishedRun

VERSION = metadata.version("iris-smoke")


def test_version_flag_prints_the_package_version() -> None:
    done = subprocess.run([sys.executable, "-m", "supervisor", "--version"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=30, check=False)  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, f"iris-smoke {VERSION}")


def test_build_info_metric_carries_the_version() -> None:
    text = generate_latest(CanaryMetrics("prod").registry).decode()
    assert f'iris_smoke_build_info{{cluster="prod",version="{VERSION}"}} 1.0' in text


def test_the_run_records_its_version(failed_run: FinishedRun) -> None:
    results = orjson.loads((failed_run.run_dir / "results.json").read_bytes())
    assert results["version"] == VERSION
    assert f"- iris-smoke {VERSION}" in (failed_run.run_dir / "summary.md").read_text()
    events = [orjson.loads(line) for line in (failed_run.run_dir / "events.jsonl").read_bytes().splitlines()]
    assert [e["version"] for e in events if e["event"] == "run_started"] == [VERSION]


def test_a_json_run_ends_with_a_verdict_line_naming_the_failed_test(failed_run: FinishedRun) -> None:
    assert failed_run.returncode == 1
    last = failed_run.stderr.strip().splitlines()[-1]
    assert last.startswith("iris-smoke: FAILED (exit 1): failed tests: broken;"), failed_run.stderr
    assert "test_failed" in last and last.endswith(f"summary: {failed_run.run_dir / 'summary.md'}")
    assert "iris-smoke: FAILED" not in failed_run.stdout, "stdout stays JSON"


def test_summary_and_junit_say_the_finish_results_json_says(failed_run: FinishedRun) -> None:
    """The three are rendered from one verdict: the same finish time and duration, to the microsecond."""
    results = orjson.loads((failed_run.run_dir / "results.json").read_bytes())
    summary = (failed_run.run_dir / "summary.md").read_text()
    assert f"finished {results['finished_at']} ({results['duration_s']} s of a" in summary
    suite = ET.parse(failed_run.run_dir / "junit.xml").getroot()
    assert suite.get("time") == f"{results['duration_s']:.3f}"
