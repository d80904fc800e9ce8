"""The run's report.html child (`report_html.render_in_child`): forked, bounded, its failure a warning."""

import json
from pathlib import Path
from typing import Any

import psutil

from supervisor import report_html
from tests.report.crafted import valid_results, write_run


class Log:
    """Records what the renderer's parent says: (level, event, fields)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.events.append(("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self.events.append(("warning", event, fields))


def test_a_run_directory_gets_its_page_from_the_forked_renderer(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", valid_results())
    log = Log()
    report_html.render_in_child(run_dir, log)
    assert log.events == [("info", "report_written", {"path": str(run_dir / "report.html")})]
    assert "<!DOCTYPE html>" in (run_dir / "report.html").read_text()


def test_a_results_file_the_renderer_refuses_is_a_warning_with_its_reason(tmp_path: Path) -> None:
    results = valid_results()
    results["tests"][0]["duration_s"] = "slow"
    run_dir = write_run(tmp_path / "run", json.dumps(results).encode())
    log = Log()
    report_html.render_in_child(run_dir, log)
    [(level, event, fields)] = log.events
    assert (level, event, fields["reason"], fields["exit_code"]) == ("warning", "report_failed", "renderer_exit", 2)
    assert any("duration_s" in line for line in fields["stderr"]), fields
    assert not (run_dir / "report.html").exists()


def test_a_renderer_past_its_time_is_killed_and_reaped(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", valid_results())
    log = Log()
    report_html.render_in_child(run_dir, log, timeout_s=0.0)
    assert psutil.Process().children() == [], "the renderer outlived its time (or was left unreaped)"
    assert log.events == [("warning", "report_failed", {"reason": "timeout", "timeout_s": 0.0})]
