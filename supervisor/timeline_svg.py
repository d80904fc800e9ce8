"""The timeline as an inline SVG: one row per phase strip, slice, task and stream, on one time axis.

Hand-written on purpose: the picture is rectangles, ticks and polylines, which plain string
templating draws in a few milliseconds with nothing to import; every text that came from
the run (job names, slice ids, reasons) goes through `reports.html_text`: `html.escape` after
`visible`, so no control, bidi or zero-width character reaches the page raw.
"""

import re

from supervisor.reports import html_text
from supervisor.timeline import FAILED_STATES, RATE_BUCKETS, Mark, Rates, Row, Timeline

WIDTH = 1100
LABEL_W = 330
PLOT_X0 = LABEL_W + 10
PLOT_W = WIDTH - PLOT_X0 - 20
ROW_H = 18
RATE_H = 34
AXIS_H = 24
SECTION_H = 22
TICKS = 10
# Labels are never cut: a longer one wraps onto more lines of its row. 11 px monospace is
# 6.6 px a character, so this many fit the label column.
LABEL_CHARS = 48
LINE_H = 13
_BREAK_AFTER = re.compile(r".*[-/ ·._:]")


def wrap_label(text: str, width: int = LABEL_CHARS) -> list[str]:
    """`text` in lines of at most `width` characters, broken after a separator where there is one."""
    lines = []
    while len(text) > width:
        head = _BREAK_AFTER.match(text[:width])
        cut = head.end() if head is not None and head.end() > width // 2 else width
        lines.append(text[:cut])
        text = text[cut:]
    return [*lines, text]


def label_text(text: str, x: float, y: float, chars: int = LABEL_CHARS) -> tuple[str, int]:
    """A `<text>` of `text` wrapped to a label column of `chars` (one tspan a line), and its line count."""
    lines = wrap_label(text, chars)
    spans = "".join(
        f'<tspan x="{x}" dy="{0 if i == 0 else LINE_H}">{html_text(line)}</tspan>' for i, line in enumerate(lines)
    )
    return f'<text class="label" x="{x}" y="{y}">{spans}</text>', len(lines)


def mark_path(kind: str, x: float, y: float) -> str:
    """The mark's shape, so an outcome is told by its shape as well as its colour (see the legend):
    a ring for done, a cross for a failure, triangles up and down for scale-ups and -downs, a
    diamond for other autoscaler actions."""
    if kind == "done":
        return f"M{x - 4.5},{y} a4.5,4.5 0 1,0 9,0 a4.5,4.5 0 1,0 -9,0"
    if kind == "failure":
        return f"M{x - 4},{y - 4} L{x + 4},{y + 4} M{x + 4},{y - 4} L{x - 4},{y + 4}"
    if kind == "scale_up":
        return f"M{x},{y - 5} L{x + 5},{y + 4} L{x - 5},{y + 4} Z"
    if kind == "scale_down":
        return f"M{x},{y + 5} L{x + 5},{y - 4} L{x - 5},{y - 4} Z"
    return f"M{x},{y - 5} L{x + 5},{y} L{x},{y + 5} L{x - 5},{y} Z"


def outcome_word(state: str) -> str:
    """A task's terminal state as the picture writes it beside its mark: a symbol and the word."""
    return f"{'✘' if state in FAILED_STATES else '✔'} {state}"


class _Canvas:
    def __init__(self, timeline: Timeline) -> None:
        self.t0 = timeline.start
        self.scale = PLOT_W / (timeline.end - timeline.start)
        self.y = AXIS_H
        self.parts: list[str] = []

    def x(self, at: float) -> float:
        return round(PLOT_X0 + min(max(at - self.t0, 0.0) * self.scale, PLOT_W), 1)

    def section(self, title: str) -> None:
        self.parts.append(f'<text class="section" x="4" y="{self.y + 15}">{html_text(title)}</text>')
        self.y += SECTION_H

    def times(self, start: float, end: float) -> str:
        """A span's times for its tooltip, in seconds from the run's start."""
        t0, t1 = start - self.t0, end - self.t0
        return f"from {t0:.1f} s to {t1:.1f} s ({t1 - t0:.1f} s)"

    def row(self, row: Row) -> None:
        y = self.y
        label, lines = label_text(row.label, 4, y + 13)
        self.parts.append(f'<g class="row">{label}')
        for span in row.spans:
            x0, x1 = self.x(span.start), self.x(span.end)
            title = f"{span.title or span.label} · {self.times(span.start, span.end)}"
            self.parts.append(
                f'<rect class="span {html_text(span.kind)}" x="{x0}" y="{y + 3}" width="{max(x1 - x0, 1.0)}"'
                f' height="{ROW_H - 6}"><title>{html_text(title)}</title></rect>'
            )
            if x1 - x0 > 7 * len(span.label) + 6 and span.kind.startswith("phase"):
                self.parts.append(f'<text class="in-span" x="{x0 + 3}" y="{y + 13}">{html_text(span.label)}</text>')
        for mark in row.marks:
            self._mark(mark, y + ROW_H / 2)
        self.parts.append("</g>")
        self.y += max(ROW_H, LINE_H * lines + 5)

    def _mark(self, mark: Mark, cy: float) -> None:
        x = self.x(mark.at)
        title = f"{mark.label} · at {mark.at - self.t0:.1f} s"
        self.parts.append(
            f'<path class="mark {html_text(mark.kind)}" d="{mark_path(mark.kind, x, cy)}">'
            f"<title>{html_text(title)}</title></path>"
        )
        if mark.outcome:  # the word too, left of the mark when it is near the right edge
            anchor = ("end", x - 8) if x > PLOT_X0 + PLOT_W - 110 else ("start", x + 8)
            self.parts.append(
                f'<text class="outcome {html_text(mark.kind)}" x="{anchor[1]}" y="{cy + 4}"'
                f' text-anchor="{anchor[0]}">{html_text(outcome_word(mark.outcome))}</text>'
            )

    def rates(self, rates: Rates, peak: float) -> None:
        label, lines = label_text(f"{rates.label} (max {max(rates.per_s):.0f}/s)", 4, self.y + 14)
        height = max(RATE_H, LINE_H * lines + 8)
        y, step = self.y + height - RATE_H, PLOT_W / RATE_BUCKETS
        points = [
            (PLOT_X0 + (i + 0.5) * step, y + RATE_H - 2 - (v / peak) * (RATE_H - 6)) for i, v in enumerate(rates.per_s)
        ]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        base = y + RATE_H - 2
        self.parts.append(
            f'<g class="rate">{label}'
            f'<polygon class="area" points="{PLOT_X0:.1f},{base:.1f} {path} {PLOT_X0 + PLOT_W:.1f},{base:.1f}">'
            f"<title>{html_text(rates.label)}: lines per second</title></polygon></g>"
        )
        self.y += height

    def axis(self, duration: float) -> None:
        self.parts.insert(
            0, f'<line class="axis" x1="{PLOT_X0}" y1="{AXIS_H - 4}" x2="{PLOT_X0 + PLOT_W}" y2="{AXIS_H - 4}"/>'
        )
        for i in range(TICKS + 1):
            x = PLOT_X0 + PLOT_W * i / TICKS
            self.parts.insert(
                0,
                f'<line class="grid" x1="{x:.1f}" y1="{AXIS_H - 8}" x2="{x:.1f}" y2="{self.y}"/>'
                f'<text class="tick" x="{x:.1f}" y="{AXIS_H - 10}">{duration * i / TICKS:.1f}s</text>',
            )

    def failures(self, marks: list[Mark]) -> None:
        for mark in marks:
            x = self.x(mark.at)
            self.parts.append(
                f'<line class="failure-line {html_text(mark.kind)}" x1="{x}" y1="{AXIS_H}" x2="{x}" y2="{self.y}">'
                f"<title>{html_text(mark.label)}</title></line>"
            )


def render_svg(timeline: Timeline) -> str:
    canvas = _Canvas(timeline)
    canvas.section("phases")
    canvas.row(timeline.phases)
    canvas.section("autoscaler: scale actions, slice boot")
    for row in timeline.autoscaler:
        canvas.row(row)
    canvas.section("jobs: submitted, pending, running, done")
    for row in timeline.jobs:
        canvas.row(row)
    if timeline.rates:
        sampled = " (sampled: stream files beyond the read budget)" if timeline.rates_sampled else ""
        canvas.section(f"stream lines per second{sampled}")
        peak = max(*(max(r.per_s) for r in timeline.rates), 1e-9)
        for rates in timeline.rates:
            canvas.rates(rates, peak)
    canvas.failures(timeline.failures)
    canvas.axis(timeline.end - timeline.start)
    height = canvas.y + 6
    return (
        f'<svg id="timeline" class="picture" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}"'
        f' viewBox="0 0 {WIDTH} {height}" data-plot-x0="{PLOT_X0}" role="img" aria-label="run timeline">'
        + "".join(canvas.parts)
        + "</svg>"
    )
