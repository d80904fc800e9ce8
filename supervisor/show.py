"""`iris-smoke show [RUN_DIR|latest]`: a finished run's verdict, tests, streams and reasons, for people.

Read from `results.json` alone, so it works on any run directory, copied or not, long
after the run. `latest` is the run under the log directory whose `results.json` is newest
(symlinks there ignored: `run_files.latest_run`). Everything printed came from a file
someone may have crafted, so every string goes through `visible`: no ESC sequence clears
the terminal, no CR rewrites the verdict line.
"""

from pathlib import Path

from supervisor.reports import count, verdict_line, visible
from supervisor.run_files import RunDirError, latest_run
from supervisor.run_result import RunResult


def find_run_dir(target: str, log_dir: Path) -> Path:
    if target != "latest":
        return Path(target)
    found = latest_run(log_dir)
    if found is None:
        raise RunDirError(f"latest: no finished run under {log_dir} (give --log-dir or a RUN_DIR)")
    return found


def _columns(rows: list[list[object]]) -> list[str]:
    cells = [[visible(str(cell)) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def render_show(results: RunResult, run_dir: Path) -> str:
    lines = [verdict_line(results, run_dir), ""]
    duration = "" if results.duration_s is None else results.duration_s
    lines.append(visible(f"run {results.run_id}, started {results.started_at}, {duration} s"))
    lines += ["", visible("failure reasons: " + (", ".join(results.failure_reasons) or "none")), "", "tests:"]
    rows: list[list[object]] = [["test", "outcome", "seconds", "error"]]
    rows += [[t.name, t.outcome, "" if t.duration_s is None else t.duration_s, t.error] for t in results.tests]
    lines += _columns(rows) if results.tests else ["  none ran"]
    rows = [["stream", "state", "lines", "reconnects", "gaps", "stale"]]
    rows += [[s.name, s.state, *map(count, (s.lines, s.reconnects, s.gaps, s.stale))] for s in results.streams]
    lines += ["", "streams:", *(_columns(rows) if results.streams else ["  none ran"])]
    report = run_dir / "report.html"
    lines += ["", visible(f"report: {report}" if report.exists() else f"report: none (iris-smoke report {run_dir})")]
    return "\n".join(lines)
