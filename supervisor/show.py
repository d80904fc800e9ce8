"""`iris-smoke show [RUN_DIR|latest]`: a finished run's verdict, tests, streams and reasons, for people.

Read from `results.json` alone, so it works on any run directory, copied or not, long
after the run. `latest` is the run under the log directory whose `results.json` is newest.
"""

from pathlib import Path
from typing import Any

import orjson

from supervisor.reports import verdict_line, visible


class RunDirError(Exception):
    """No readable run there: the message names the path and what to give instead."""


def find_run_dir(target: str, log_dir: Path) -> Path:
    if target != "latest":
        return Path(target)
    runs = sorted(log_dir.glob("*/results.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise RunDirError(f"latest: no finished run under {log_dir} (give --log-dir or a RUN_DIR)")
    return runs[-1].parent


def load_results(run_dir: Path) -> dict[str, Any]:
    try:
        results = orjson.loads((run_dir / "results.json").read_bytes())
    except OSError as exc:
        raise RunDirError(f"{run_dir}: no results.json ({exc.strerror}); is it a run directory?") from None
    except orjson.JSONDecodeError:
        raise RunDirError(f"{run_dir}/results.json: not JSON; the run may still be going") from None
    if not isinstance(results, dict) or "outcome" not in results:
        raise RunDirError(f"{run_dir}/results.json: not an iris-smoke verdict")
    return results


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def render_show(results: dict[str, Any], run_dir: Path) -> str:
    lines = [verdict_line(results, run_dir), ""]
    lines.append(
        f"run {visible(str(results.get('run_id')))}, started {results.get('started_at')}, {results.get('duration_s')} s"
    )
    lines += ["", "failure reasons: " + (", ".join(results.get("failure_reasons") or []) or "none"), "", "tests:"]
    tests = results.get("tests") or []
    rows = [["test", "outcome", "seconds", "error"]]
    rows += [[visible(str(t.get(k, ""))) for k in ("name", "outcome", "duration_s", "error")] for t in tests]
    lines += _columns(rows) if tests else ["  none ran"]
    streams = results.get("streams") or []
    rows = [["stream", "state", "lines", "reconnects", "gaps", "stale"]]
    rows += [
        [visible(str(s.get(k, ""))) for k in ("name", "state", "lines", "reconnects", "gaps", "stale")] for s in streams
    ]
    lines += ["", "streams:", *(_columns(rows) if streams else ["  none ran"])]
    report = run_dir / "report.html"
    lines += ["", f"report: {report}" if report.exists() else f"report: none (iris-smoke report {run_dir})"]
    return "\n".join(lines)
