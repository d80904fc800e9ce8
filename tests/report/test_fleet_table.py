"""The fleet table: one row per worker, joining discovery's listing, its stream, and the fleet checks'
per-worker findings; in results.json (`fleet`), summary.md and report.html, escaped as everything else."""

from pathlib import Path
from typing import Any

from common.jsonshape import to_json_object
from common.outcome import Outcome
from supervisor.children import ChildState
from supervisor.fleet_table import fleet_rows
from supervisor.report_html import render_report
from supervisor.reports import render_summary
from supervisor.results_file import from_verdict
from supervisor.run_result import LogsAlive, StreamEntry
from tests.report.crafted import valid_results
from workers import messages
from workers.hosts import Role
from workers.messages import HostEntry, WorkerFinding

SLICE = "smoke-tpu-0"


def _worker(worker_id: str, host: int, *, healthy: bool = True, slice_name: str = SLICE) -> HostEntry:
    return HostEntry(f"{worker_id}-vm", 0, Role.WORKER, "10.0.0.1", "", "iris-worker", slice=slice_name,
                     slice_host=host, worker_id=worker_id, healthy=healthy, group="tpu")  # fmt: skip


def _stream(worker_id: str, lines: int, no_data: bool = False) -> StreamEntry:
    return StreamEntry(f"stream:{worker_id}-vm", f"{worker_id}-vm", 0, Role.WORKER, ChildState.EXITED, 1, no_data,
                       lines=lines, gaps=0)  # fmt: skip


def _check(name: str, *findings: WorkerFinding) -> messages.TestResult:
    return messages.TestResult(name, Outcome.FAILED, 0.1, "; ".join(f.problem for f in findings), workers=findings)


def _table() -> list[dict[str, Any]]:
    """A 4-host slice with host 3 missing, w1 without its capacity type, w2 log-mute (stream_no_data),
    w0 listed late (no line, not judged by the verdict), and a CPU worker listed too late for a stream."""
    hosts = [_worker("w0", 0), _worker("w1", 1), _worker("w2", 2, healthy=False), _worker("cpu", 0, slice_name="")]
    hosts.insert(0, HostEntry("smoke-controller", 0, Role.CONTROLLER, "10.0.0.9", "", "iris-controller"))
    streams = [_stream("w0", 0), _stream("w1", 40), _stream("w2", 0, no_data=True)]
    checks = {
        "slices_complete": _check("slices_complete", WorkerFinding("", "no worker listed for this host", SLICE, 3)),
        "worker_attributes": _check("worker_attributes", WorkerFinding("w1", "carries no preemptible attribute")),
    }
    return [to_json_object(row) for row in fleet_rows(hosts, streams, checks)]


def test_every_worker_is_a_row_with_its_slice_group_stream_and_the_checks_findings() -> None:
    rows = {(r["worker_id"], r["slice_host"]): r for r in _table()}
    assert list(rows) == [("cpu", None), ("w0", 0), ("w1", 1), ("w2", 2), ("", 3)], "by group, slice, host"
    assert rows["w1", 1] | {} == {
        "worker_id": "w1", "listed": True, "healthy": True, "vm": "w1-vm", "slice": SLICE, "slice_host": 1,
        "group": "tpu", "stream": "stream:w1-vm", "stream_state": "exited", "lines": 40, "gaps": 0,
        "logs_alive": "yes",
        "findings": [{"check": "worker_attributes", "problem": "carries no preemptible attribute"}],
    }  # fmt: skip
    missing = rows["", 3]
    assert not missing["listed"] and missing["healthy"] is None and missing["group"] == "tpu", missing
    assert missing["findings"] == [{"check": "slices_complete", "problem": "no worker listed for this host"}]
    assert rows["w2", 2]["healthy"] is False


def test_a_worker_with_no_log_line_is_not_alive_whatever_the_verdict_judged() -> None:
    """Alive only with a line seen: stream_no_data (up the whole window), no lines (not up all of it), or no
    stream at all are each `no` in the row."""
    alive = {(r["worker_id"], r["slice_host"]): r["logs_alive"] for r in _table()}
    assert alive == {
        ("cpu", None): LogsAlive.NO_STREAM, ("w0", 0): LogsAlive.NO_LINES, ("w1", 1): LogsAlive.YES,
        ("w2", 2): LogsAlive.STREAM_NO_DATA, ("", 3): LogsAlive.NO_STREAM,
    }  # fmt: skip


def test_the_summary_and_the_report_show_the_table(tmp_path: Path) -> None:
    results = valid_results() | {"fleet": _table()}
    parsed = from_verdict(results)
    summary, html = render_summary(parsed, tmp_path), render_report(tmp_path, parsed)
    assert "| worker | healthy | slice | host | group | stream | lines | gaps | logs alive | findings |" in summary
    assert "| w0 | yes | smoke-tpu-0 | 0 | tpu | stream:w0-vm | 0 | 0 | no: no lines |  |" in summary
    assert "| w2 | no | smoke-tpu-0 | 2 | tpu | stream:w2-vm | 0 | 0 | no: stream_no_data |  |" in summary
    assert "| cpu | yes |  |  | tpu |  |  |  | no: no stream |  |" in summary
    assert ("| (no worker listed) | not listed | smoke-tpu-0 | 3 | tpu |  |  |  | no: no stream | "
            "slices_complete: no worker listed for this host |") in summary  # fmt: skip
    assert "<h2>Fleet</h2>" in html and "<td>worker_attributes: carries no preemptible attribute</td>" in html
    assert '<tr class="failed"><td>w2</td><td>no</td>' in html and '<tr class=""><td>w1</td>' not in html


def test_a_controllers_hostile_text_in_the_table_is_escaped_in_every_view(tmp_path: Path) -> None:
    row = _table()[0] | {"worker_id": "w<svg onload=alert(1)>\u202e", "group": "g|`x`"}
    row["findings"] = [{"check": "worker_attributes", "problem": "region=<img src=x onerror=alert(2)>"}]
    parsed = from_verdict(valid_results() | {"fleet": [row]})
    summary, html = render_summary(parsed, tmp_path), render_report(tmp_path, parsed)
    assert "| w&lt;svg onload=alert(1)&gt;\\u202e | yes |" in summary and "| g\\|\\`x\\` |" in summary
    assert "region=&lt;img src=x onerror=alert(2)&gt;" in summary
    assert "<td>w&lt;svg onload=alert(1)&gt;\\u202e</td>" in html and "<img" not in html and "\u202e" not in html
