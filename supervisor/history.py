"""`index.html`: a log directory's runs over time, per probe, each linked to its `report.html`.

`iris-smoke report --index LOG_DIR` writes it, and the canary after each run. For each probe
(today one, `suite`; a run's results.json may name another in `probe`): the last runs as a
strip of outcomes, oldest to newest, each a link marked by symbol, word and colour; small
plots of run duration, scheduling latency (the slowest job's, submitted -> no task pending)
and scale-up latency (the slowest slice's, requested -> every VM ready), the same latencies
the canary's metrics carry (`canary.latency`); and a table of the runs.

Self-contained and inert like the run report (inline CSS and SVG, no script). Every run
directory is untrusted input: directories that are symlinks are skipped, files are read by
`run_files` (capped, no symlink, no FIFO) and `results_file`, a run whose results.json is
unusable is listed as such with the reason, and every text is escaped (`reports.html_text`).
"""

from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

from common.files import write_atomically
from supervisor.canary import latency, runs
from supervisor.canary.config import SUITE_PROBE
from supervisor.report_legend import OUTCOME_SYMBOLS, outcome_badge
from supervisor.reports import html_text
from supervisor.results_file import RESULTS_NAME, parse
from supervisor.run_files import RESULTS_MAX_BYTES, RunDirError, read_json
from supervisor.run_result import RunResult
from supervisor.timeline import parse_time
from supervisor.timeline_svg import label_text

INDEX_NAME = "index.html"
RUNS_PER_PROBE = 50
# A log directory can hold thousands of runs; only the newest this many are read at all.
MAX_RUNS_READ = 500
DEFAULT_PROBE = SUITE_PROBE
PLOT_W, PLOT_H, PLOT_X0 = 560, 64, 200
LABEL_CHARS = 28  # of 11 px monospace in the plots' label column


@dataclass(frozen=True)
class RunEntry:
    """One run directory as the page shows it: its results, or why they could not be read."""

    name: str
    probe: str
    results: RunResult | None
    problem: str = ""
    scheduling_s: float | None = None
    scale_up_s: float | None = None
    has_report: bool = False

    @property
    def started(self) -> float:
        return parse_time(self.results.started_at) or 0.0 if self.results else 0.0


def _run_dirs(log_dir: Path) -> list[Path]:
    """The newest MAX_RUNS_READ directories holding a results.json, symlinks ignored."""
    found = []
    try:
        entries = [e for e in log_dir.iterdir() if not e.is_symlink() and e.is_dir()]
    except OSError as exc:
        raise RunDirError(f"{log_dir}: cannot list ({exc.strerror})") from None
    for entry in entries:
        results = entry / RESULTS_NAME
        if results.exists() and not results.is_symlink():
            found.append((results.stat().st_mtime, entry))
    return [path for _, path in sorted(found, reverse=True)[:MAX_RUNS_READ]]


def _slowest(values: dict[str, float]) -> float | None:
    return max(values.values(), default=None)


def read_run(run_dir: Path) -> RunEntry:
    has_report = (run_dir / "report.html").is_file()
    try:
        top = read_json(run_dir / RESULTS_NAME, RESULTS_MAX_BYTES)
        if top is None:
            raise RunDirError(f"no {RESULTS_NAME}")
        results = parse(top)
        probe = top.at("probe").as_text() or runs.probe_of(run_dir) or DEFAULT_PROBE
    except RunDirError as exc:
        return RunEntry(run_dir.name, DEFAULT_PROBE, None, str(exc), has_report=has_report)
    measured = latency.measure(run_dir)
    return RunEntry(
        run_dir.name, probe, results, "", _slowest(measured.scheduling_s), _slowest(measured.scale_up_s), has_report
    )


def _href(entry: RunEntry) -> str:
    return escape(quote(entry.name) + "/report.html") if entry.has_report else ""


def _strip(runs: list[RunEntry]) -> str:
    """The runs, oldest first, as boxes: symbol and colour by outcome, a link to each report."""
    cells = []
    for entry in runs:
        outcome = entry.results.outcome if entry.results else "unreadable"
        symbol = OUTCOME_SYMBOLS.get(entry.results.outcome, "?") if entry.results else "?"
        reasons = ", ".join(entry.results.failure_reasons) if entry.results else entry.problem
        title = f"{entry.name}: {outcome}" + (f" ({reasons})" if reasons else "")
        if entry.results:
            title += f", started {entry.results.started_at}, {entry.results.duration_s or 0:g} s"
        body = f'<span class="cell {escape(outcome)}" title="{html_text(title)}">{symbol}</span>'
        href = _href(entry)
        cells.append(f'<a class="strip-run" href="{href}">{body}</a>' if href else body)
    return f'<div class="strip" role="list" aria-label="runs, oldest first">{"".join(cells)}</div>'


def _plot(title: str, values: list[float | None], names: list[str], ident: str) -> str:
    """A small line plot of one value per run (oldest left), a point per run with its tooltip."""
    known = [v for v in values if v is not None]
    peak = max(known, default=0.0) or 1.0
    step = PLOT_W / max(len(values) - 1, 1)
    points, dots = [], []
    for i, (value, name) in enumerate(zip(values, names, strict=True)):
        if value is None:
            continue
        x, y = PLOT_X0 + i * step, PLOT_H - 4 - value / peak * (PLOT_H - 12)
        points.append(f"{x:.1f},{y:.1f}")
        dots.append(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>{html_text(name)}: '
                    f"{value:.2f} s</title></circle>")  # fmt: skip
    label, _ = label_text(f"{title} (max {max(known, default=0.0):.1f} s)", 4, 16, LABEL_CHARS)
    line = f'<polyline class="trend" points="{" ".join(points)}"/>' if len(points) > 1 else ""
    empty = "" if known else f'<text class="none" x="{PLOT_X0 + 4}" y="{PLOT_H / 2}">not measured</text>'
    width = PLOT_X0 + PLOT_W + 10
    return (
        f'<svg id="{ident}" class="picture plot" xmlns="http://www.w3.org/2000/svg" width="{width}"'
        f' height="{PLOT_H}" viewBox="0 0 {width} {PLOT_H}" data-plot-x0="{PLOT_X0}" role="img"'
        f' aria-label="{escape(title)}">{label}'
        f'<line class="axis" x1="{PLOT_X0}" y1="{PLOT_H - 4}" x2="{PLOT_X0 + PLOT_W}" y2="{PLOT_H - 4}"/>'
        f"{line}{''.join(dots)}{empty}</svg>"
    )


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _table(runs: list[RunEntry]) -> str:
    rows = []
    for entry in reversed(runs):
        href = _href(entry)
        name = html_text(entry.name)
        link = f'<a class="run" href="{href}">{name}</a>' if href else f'<span class="run">{name}</span>'
        if entry.results is None:
            rows.append(f"<tr><td>{link}</td><td></td><td>unreadable</td><td>{html_text(entry.problem)}</td>"
                        "<td></td><td></td><td></td></tr>")  # fmt: skip
            continue
        r = entry.results
        cells = [html_text(r.started_at), outcome_badge(r.outcome), html_text(", ".join(r.failure_reasons))]
        cells += [_seconds(r.duration_s), _seconds(entry.scheduling_s), _seconds(entry.scale_up_s)]
        rows.append(f'<tr class="{escape(r.outcome)}"><td>{link}</td>' + "".join(f"<td>{c}</td>" for c in cells))
    head = "".join(
        f"<th>{h}</th>"
        for h in ("run", "started", "outcome", "reasons", "duration (s)", "scheduling (s)", "scale-up (s)")
    )
    return f'<div class="table"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def _probe_section(probe: str, runs: list[RunEntry]) -> str:
    names = [r.name for r in runs]
    ident = quote(probe, safe="")
    plots = "".join(
        _plot(title, values, names, f"{ident}-{key}")
        for key, title, values in (
            ("duration", "run duration", [r.results.duration_s if r.results else None for r in runs]),
            ("scheduling", "scheduling latency", [r.scheduling_s for r in runs]),
            ("scale-up", "scale-up latency", [r.scale_up_s for r in runs]),
        )
    )
    passed = sum(1 for r in runs if r.results and r.results.outcome == "passed")
    return (
        f'<section class="probe"><h2>probe {html_text(probe)}: {passed}/{len(runs)} of the last runs passed</h2>'
        f'{_strip(runs)}<div class="plots">{plots}</div>{_table(runs)}</section>'
    )


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1,h2{overflow-wrap:anywhere}td,th{overflow-wrap:break-word}
table{border-collapse:collapse;margin:.5em 0;max-width:100%}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
.strip{display:flex;flex-wrap:wrap;gap:3px;margin:.5em 0}.strip a{text-decoration:none}
.cell{display:inline-block;width:22px;height:22px;line-height:22px;text-align:center;border-radius:3px;
color:#fff;font-weight:bold;background:#757575}
.cell.passed{background:#2e7d32}.cell.failed,.cell.error{background:#c62828}.cell.timeout{background:#ef6c00}
.cell.cancelled,.cell.skipped{background:#9e9e9e}
.outcome.passed{color:#1a7f37}.outcome.failed,.outcome.error,.outcome.timeout{color:#c62828}
.plots,.table{overflow-x:auto;max-width:100%}
svg text{font:11px monospace;fill:#333}svg .axis{stroke:#999}svg .none{fill:#999}
.trend{fill:none;stroke:#1565c0;stroke-width:1.5}.dot{fill:#1565c0}
"""


def render_index(log_dir: Path, runs: list[RunEntry], per_probe: int = RUNS_PER_PROBE) -> str:
    probes: dict[str, list[RunEntry]] = {}
    for entry in sorted(runs, key=lambda r: (r.started, r.name)):
        probes.setdefault(entry.probe, []).append(entry)
    sections = "".join(_probe_section(p, entries[-per_probe:]) for p, entries in sorted(probes.items()))
    legend = " ".join(outcome_badge(o) for o in OUTCOME_SYMBOLS)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>iris-smoke runs in {html_text(log_dir.name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>iris-smoke runs: {html_text(log_dir)}</h1>"
        f"<p>The last {per_probe} runs of each probe, oldest first; each links to its report. "
        f"Outcomes: {legend}, ? unreadable.</p>{sections or '<p>No run here yet.</p>'}</body></html>\n"
    )


def write_index(log_dir: Path) -> Path:
    """Render `index.html` in `log_dir` from its run directories; RunDirError if the directory is unusable."""
    if log_dir.is_symlink() or not log_dir.is_dir():
        raise RunDirError(f"{log_dir}: not a directory of runs")
    page = render_index(log_dir, [read_run(d) for d in _run_dirs(log_dir)])
    path = log_dir / INDEX_NAME
    write_atomically(path, page.encode())
    return path
