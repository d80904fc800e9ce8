"""`report.html`: one self-contained page per run, to look at it later in any browser.

The verdict, the tests with failed tasks' log tails, and the timeline (`timeline_svg`).
Self-contained: inline CSS and SVG, no script, no font, no image fetched, so it opens
from a mail attachment or an air-gapped bastion alike. Everything the run recorded is
escaped (`html.escape`), control characters shown as `\\xNN` as in `summary.md`.

The run renders it in a short-lived child (`render_in_child`), after `results.json`,
`summary.md` and `junit.xml` are on disk: a rendering bug, a pathological run directory
or a slow disk can then cost a warning (`report_failed`) but never the verdict or the
exit code. `iris-smoke report RUN_DIR` is the same code, run by hand.
"""

import subprocess
import sys
from html import escape
from pathlib import Path
from typing import Any

import orjson

from common.files import write_atomically
from supervisor import timeline
from supervisor.reports import LOG_TAIL_LINES, visible
from supervisor.timeline_svg import render_svg
from supervisor.version import VERSION

REPORT_NAME = "report.html"
# After the audit and the verdict, outside the run's deadline: rendering reads at most
# 64 MiB of stream files and takes well under a second, so this only bounds a bug.
RENDER_TIMEOUT_S = 10.0

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1 .passed{color:#1a7f37}h1 .failed,h1 .error,h1 .timeout,h1 .cancelled{color:#c62828}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
tr.failed td,tr.error td,tr.timeout td{background:#fdecea}
pre{background:#f6f8fa;padding:.5em;overflow-x:auto;max-width:1100px}
svg text{font:11px monospace;fill:#333}svg .section{font-weight:bold;fill:#000}
svg .in-span{font-size:10px}svg .tick{text-anchor:middle;fill:#666}svg .grid{stroke:#eee}svg .axis{stroke:#999}
.span{stroke:none;fill:#9e9e9e}.phase-ok{fill:#90caf9}.phase-bad{fill:#ef9a9a}.submitted{fill:#e0e0e0}
.pending{fill:#ffcc80}.assigned,.building{fill:#fff176}.running{fill:#66bb6a}.boot{fill:#ce93d8}.ready{fill:#b3e5fc}.unknown{fill:#bdbdbd}
.mark.done{fill:#1b5e20}.mark.failure{fill:#c62828}.mark.scale_up{fill:#6a1b9a}.mark.scale_down{fill:#00838f}
.mark.action{fill:#555}.area{fill:#64b5f6;stroke:#1565c0;stroke-width:1}
.failure-line{stroke:#c62828;stroke-width:1.5;stroke-dasharray:4 2}.failure-line.gap{stroke:#ef6c00}
"""


def _text(value: Any) -> str:
    return escape(visible(str(value)))


def _table(headers: list[str], rows: list[tuple[str, list[Any]]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr class="{escape(cls)}">' + "".join(f"<td>{_text(v)}</td>" for v in cells) + "</tr>" for cls, cells in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _tests(results: dict[str, Any]) -> str:
    tests = results.get("tests") or []
    if not tests:
        return "<p>No test ran.</p>"
    rows = [
        (str(t.get("outcome")), [t.get("name"), t.get("outcome"), t.get("duration_s", ""), t.get("error", "")])
        for t in tests
    ]
    parts = [_table(["test", "outcome", "duration (s)", "error"], rows)]
    for test in tests:
        for tail in test.get("log_tail") or []:
            lines = [visible(str(line)) for line in (tail.get("lines") or [])[-LOG_TAIL_LINES:]]
            parts.append(f"<h3>{_text(test.get('name'))}: task {_text(tail.get('task'))} (last lines)</h3>")
            parts.append(f'<pre class="log-tail">{escape(chr(10).join(lines))}</pre>')
    return "".join(parts)


def _streams(results: dict[str, Any]) -> str:
    streams = results.get("streams") or []
    rows = [
        (
            "stale" if s.get("stale") else "",
            [s.get("name"), s.get("state"), s.get("lines", 0), s.get("reconnects", 0), s.get("gaps", 0)],
        )
        for s in streams
    ]
    return _table(["stream", "state", "lines", "reconnects", "gaps"], rows) if rows else "<p>No stream ran.</p>"


def render_report(run_dir: Path, results: dict[str, Any]) -> str:
    outcome = str(results.get("outcome", "unknown"))
    reasons = ", ".join(str(r) for r in results.get("failure_reasons") or []) or "none"
    svg = render_svg(timeline.build(run_dir, results))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>iris-smoke {_text(results.get('run_id'))}: {_text(outcome)}</title><style>{_CSS}</style></head><body>"
        f"<h1>iris-smoke run {_text(results.get('run_id'))}: "
        f'<span class="{escape(outcome)}">{_text(outcome.upper())}</span></h1>'
        f"<p>exit code {_text(results.get('exit_code'))}; failure reasons: {_text(reasons)}<br>"
        f"started {_text(results.get('started_at'))}, {_text(results.get('duration_s'))} s"
        f" of a {_text(results.get('timeout_s'))} s deadline; iris-smoke {_text(results.get('version', VERSION))}</p>"
        f"<h2>Timeline</h2>{svg}<h2>Tests</h2>{_tests(results)}<h2>Streams</h2>{_streams(results)}</body></html>\n"
    )


def write_report(run_dir: Path) -> Path:
    """Render `report.html` from the run directory's files (results.json first)."""
    results = orjson.loads((run_dir / "results.json").read_bytes())
    path = run_dir / REPORT_NAME
    write_atomically(path, render_report(run_dir, results).encode())
    return path


def render_in_child(run_dir: Path, log: Any, timeout_s: float = RENDER_TIMEOUT_S) -> None:
    """`iris-smoke report RUN_DIR` as a child; its failure is logged, never raised."""
    argv = [sys.executable, "-m", "supervisor", "report", str(run_dir)]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:  # subprocess.run has killed and reaped it
        log.warning("report_failed", reason="timeout", timeout_s=timeout_s)
        return
    except OSError as exc:
        log.warning("report_failed", reason="spawn_failed", error=str(exc))
        return
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", "replace").strip().splitlines()
        log.warning("report_failed", reason="renderer_exit", exit_code=done.returncode, stderr=stderr[-5:])
        return
    log.info("report_written", path=str(run_dir / REPORT_NAME))
