"""`report.html`: one self-contained page per run, to look at it later in any browser.

The verdict, the tests with failed tasks' log tails, and the timeline (`timeline_svg`).
Self-contained: inline CSS and SVG, no script, no font, no image fetched, so it opens
from a mail attachment or an air-gapped bastion alike. Everything the run recorded is
escaped (`html.escape`), control, bidi and zero-width characters shown as `\\xNN` /
`\\uNNNN` as in `summary.md` (`reports.visible`). The run directory is read as untrusted
input (`run_files`): a malformed or planted file is one line and exit 2, never a traceback.

The run renders it in a short-lived child (`render_in_child`), after `results.json`,
`summary.md` and `junit.xml` are on disk: a rendering bug, a pathological run directory
or a slow disk can then cost a warning (`report_failed`) but never the verdict or the
exit code. The child is `iris-smoke report RUN_DIR`, the same code run by hand, forked
rather than exec'd: the run has its modules loaded already, and a fresh interpreter's
imports cost every run 0.3 s of CPU (2-4 s of waiting on a loaded machine).
"""

import sys
from html import escape
from pathlib import Path
from typing import Any

from common.deadline import Deadline
from common.files import write_atomically
from common.processes import wait_exit
from supervisor import timeline
from supervisor.report_legend import outcome_badge, render_legend
from supervisor.reports import FLEET_HEADERS, LOG_TAIL_LINES, count, fleet_cells, html_text, visible
from supervisor.results_file import read_results
from supervisor.run_result import RunResult
from supervisor.timeline_svg import render_svg
from supervisor.version import VERSION
from workers.groups import ProcessGroups

REPORT_NAME = "report.html"
# After the audit and the verdict, outside the run's deadline: rendering reads at most
# 64 MiB of stream files and takes well under a second, so this only bounds a bug.
RENDER_TIMEOUT_S = 10.0

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1,h2,h3,td,th{overflow-wrap:anywhere}
h1 .passed,.outcome.passed{color:#1a7f37}
.outcome.failed,.outcome.error,.outcome.timeout{color:#c62828}
table{border-collapse:collapse;margin:.5em 0;max-width:100%}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
tr.failed td,tr.error td,tr.timeout td{background:#fdecea}
pre{background:#f6f8fa;padding:.5em;overflow-x:auto;max-width:1100px}
.figure{overflow-x:auto;max-width:100%}
ul.legend{list-style:none;padding:0;columns:2 22em;font-size:13px}
ul.legend li{margin:2px 0}svg.key{vertical-align:middle}
svg text{font:11px monospace;fill:#333}svg .section{font-weight:bold;fill:#000}
svg .in-span{font-size:10px}svg .tick{text-anchor:middle;fill:#666}svg .grid{stroke:#eee}svg .axis{stroke:#999}
svg .outcome{font-size:10px;font-weight:bold}svg .outcome.failure{fill:#c62828}svg .outcome.done{fill:#1b5e20}
.span{stroke:none;fill:#9e9e9e}.phase-ok{fill:#90caf9}.phase-bad{fill:#ef9a9a}.submitted{fill:#e0e0e0}
.pending{fill:#ffcc80}.assigned,.building{fill:#fff176}.running{fill:#66bb6a}.boot{fill:#ce93d8}.ready{fill:#b3e5fc}.unknown{fill:#bdbdbd}
.mark.done{fill:none;stroke:#1b5e20;stroke-width:2}.mark.failure{fill:none;stroke:#c62828;stroke-width:2.5}
.mark.scale_up{fill:#6a1b9a}.mark.scale_down{fill:#00838f}.mark.action{fill:#555}
.area{fill:#64b5f6;stroke:#1565c0;stroke-width:1}
.failure-line{stroke:#c62828;stroke-width:1.5;stroke-dasharray:4 2}
.failure-line.gap{stroke:#ef6c00;stroke-dasharray:1 3}
"""


class Html(str):
    """A cell already rendered as HTML (an outcome badge), not text to escape."""


def _cell(value: object) -> str:
    return f"<td>{value if isinstance(value, Html) else html_text(value)}</td>"


def _table(headers: list[str], rows: list[tuple[str, list[object]]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(f'<tr class="{escape(cls)}">' + "".join(_cell(v) for v in cells) + "</tr>" for cls, cells in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _tests(results: RunResult) -> str:
    if not results.tests:
        return "<p>No test ran.</p>"
    rows: list[tuple[str, list[object]]] = [
        (t.outcome, [t.name, Html(outcome_badge(t.outcome)), "" if t.duration_s is None else t.duration_s, t.error])
        for t in results.tests
    ]
    parts = [_table(["test", "outcome", "duration (s)", "error"], rows)]
    for test in results.tests:
        for tail in test.log_tail:
            lines = [visible(line) for line in tail.lines[-LOG_TAIL_LINES:]]
            parts.append(f"<h3>{html_text(test.name)}: task {html_text(tail.task)} (last lines)</h3>")
            parts.append(f'<pre class="log-tail">{escape(chr(10).join(lines))}</pre>')
    return "".join(parts)


def _streams(results: RunResult) -> str:
    rows: list[tuple[str, list[object]]] = [
        ("stale" if s.stale else "", [s.name, s.state, *map(count, (s.lines, s.reconnects, s.gaps))])
        for s in results.streams
    ]
    return _table(["stream", "state", "lines", "reconnects", "gaps"], rows) if rows else "<p>No stream ran.</p>"


def _fleet(results: RunResult) -> str:
    """The fleet table; a row with a finding, or whose logs were not seen alive, marked as failed."""
    rows: list[tuple[str, list[object]]] = [
        ("failed" if r.findings or r.logs_alive != "yes" else "", fleet_cells(r)) for r in results.fleet
    ]
    return _table(FLEET_HEADERS, rows) if rows else "<p>No worker listed.</p>"


def render_report(run_dir: Path, results: RunResult) -> str:
    outcome = results.outcome
    reasons = ", ".join(results.failure_reasons) or "none"
    svg = render_svg(timeline.build(run_dir, results))
    duration = "" if results.duration_s is None else results.duration_s
    timeout = "" if results.timeout_s is None else results.timeout_s
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>iris-smoke {html_text(results.run_id)}: {html_text(outcome)}</title><style>{_CSS}</style></head><body>"
        f"<h1>iris-smoke run {html_text(results.run_id)}: "
        f"{outcome_badge(outcome, shout=True)}</h1>"
        f"<p>exit code {results.exit_code}; failure reasons: {html_text(reasons)}<br>"
        f"started {html_text(results.started_at)}, {html_text(duration)} s"
        f" of a {html_text(timeout)} s deadline; iris-smoke {html_text(results.version or VERSION)}</p>"
        f'<h2>Timeline</h2>{render_legend()}<div class="figure">{svg}</div>'
        f"<h2>Tests</h2>{_tests(results)}<h2>Fleet</h2>{_fleet(results)}<h2>Streams</h2>{_streams(results)}"
        "</body></html>\n"
    )


def write_report(run_dir: Path) -> Path:
    """Render `report.html` from the run directory's files (results.json first); RunDirError if one is unusable."""
    results = read_results(run_dir)
    path = run_dir / REPORT_NAME
    write_atomically(path, render_report(run_dir, results).encode())
    return path


def index_argv(log_dir: Path) -> list[str]:
    """`iris-smoke report --index LOG_DIR`: the history page of the runs under `log_dir`."""
    return [sys.executable, "-m", "supervisor", "report", "--index", str(log_dir)]


def render_in_child(run_dir: Path, log: Any, timeout_s: float = RENDER_TIMEOUT_S) -> None:
    """`iris-smoke report RUN_DIR` as a forked child (the run waits for it); its failure is logged, never raised."""
    failed, written = "report_failed", "report_written"
    groups = ProcessGroups()
    try:
        proc = groups.fork("supervisor.cli:main", ["report", str(run_dir)], "iris-smoke-report")
    except OSError as exc:
        log.warning(failed, reason="spawn_failed", error=str(exc))
        return
    proc.stdin.close()
    try:
        if not wait_exit(proc, Deadline.after(timeout_s)):
            groups.stop(proc, grace_s=0.0)  # its group KILLed and it reaped
            log.warning(failed, reason="timeout", timeout_s=timeout_s)
            return
        stderr = proc.stderr.read().decode("utf-8", "replace").strip().splitlines()
    finally:  # what it printed on stdout (the path) is said in our event
        proc.stdout.close()
        proc.stderr.close()
    if proc.returncode != 0:
        log.warning(failed, reason="renderer_exit", exit_code=proc.returncode, stderr=stderr[-5:])
        return
    log.info(written, path=str(run_dir / REPORT_NAME))
