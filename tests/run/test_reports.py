"""summary.md and junit.xml say the same as results.json, and survive hostile text."""

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from supervisor.reports import render_junit, render_summary
from supervisor.results_file import from_verdict
from tests.report.crafted import valid_results

RESULTS: dict[str, Any] = valid_results() | {
    "cluster": valid_results()["cluster"] | {"address": "127.0.0.1:1"},
    "tests": [
        {"name": "simple", "outcome": "passed", "error": "", "duration_s": 2.5},
        {
            "name": "broken",
            "outcome": "failed",
            "duration_s": 1.0,
            "error": "state failed | exit 1",
            "log_tail": [{"job_id": "/smoke/broken", "task": 0, "lines": ["boom \x1b[31mred\x00", "last line"]}],
        },
        {"name": "slow", "outcome": "timeout", "error": "", "duration_s": 9.0},
    ],
    "autoscaler_actions": [{"timestamp": "t", "action_type": "scale_up", "scale_group": "tpu", "slice_id": "s-0"}],
}


def test_junit_counts_failures_and_errors_and_carries_the_log_tail() -> None:
    suite = ET.fromstring(render_junit(from_verdict(RESULTS)))
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    failure = suite.find("testcase[@name='broken']/failure")
    assert failure is not None and "last line" in (failure.text or "")
    assert suite.find("testcase[@name='slow']/error") is not None


def test_summary_has_tables_and_the_failed_tail(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{}")
    text = render_summary(from_verdict(RESULTS), tmp_path)
    assert text.startswith("# iris-smoke run r1: FAILED")
    assert "| broken | failed | 1.0 | state failed \\| exit 1 |" in text
    assert "last line" in text and "scale_up" in text and "`results.json`" in text
