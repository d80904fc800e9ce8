"""The timeline as an inline SVG: one row per phase strip, slice, task and stream, on one time axis.

Hand-written on purpose: the picture is rectangles, ticks and polylines, which plain string
templating draws in a few milliseconds with nothing to import; every text that came from
the run (job names, slice ids, reasons) goes through `reports.html_text`: `html.escape` after
`visible`, so no control, bidi or zero-width character reaches the page raw.
"""

from supervisor.reports import html_text
from supervisor.timeline import RATE_BUCKETS, Mark, Rates, Row, Timeline

WIDTH = 1100
LABEL_W = 330
PLOT_X0 = LABEL_W + 10
PLOT_W = WIDTH - PLOT_X0 - 20
ROW_H = 18
RATE_H = 34
AXIS_H = 24
SECTION_H = 22
TICKS = 10


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

    def row(self, row: Row) -> None:
        y = self.y
        self.parts.append(f'<g class="row"><text class="label" x="4" y="{y + 13}">{html_text(row.label[-52:])}</text>')
        for span in row.spans:
            x0, x1 = self.x(span.start), self.x(span.end)
            self.parts.append(
                f'<rect class="span {html_text(span.kind)}" x="{x0}" y="{y + 3}" width="{max(x1 - x0, 1.0)}"'
                f' height="{ROW_H - 6}"><title>{html_text(span.title or span.label)}</title></rect>'
            )
            if x1 - x0 > 7 * len(span.label) + 6 and span.kind.startswith("phase"):
                self.parts.append(f'<text class="in-span" x="{x0 + 3}" y="{y + 13}">{html_text(span.label)}</text>')
        for mark in row.marks:
            self._mark(mark, y + ROW_H / 2)
        self.parts.append("</g>")
        self.y += ROW_H

    def _mark(self, mark: Mark, cy: float) -> None:
        self.parts.append(
            f'<circle class="mark {html_text(mark.kind)}" cx="{self.x(mark.at)}" cy="{cy}" r="4">'
            f"<title>{html_text(mark.label)}</title></circle>"
        )

    def rates(self, rates: Rates, peak: float) -> None:
        y, step = self.y, PLOT_W / RATE_BUCKETS
        points = [
            (PLOT_X0 + (i + 0.5) * step, y + RATE_H - 2 - (v / peak) * (RATE_H - 6)) for i, v in enumerate(rates.per_s)
        ]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        base = y + RATE_H - 2
        self.parts.append(
            f'<g class="rate"><text class="label" x="4" y="{y + 20}">{html_text(rates.label[-40:])}'
            f" (max {max(rates.per_s):.0f}/s)</text>"
            f'<polygon class="area" points="{PLOT_X0:.1f},{base:.1f} {path} {PLOT_X0 + PLOT_W:.1f},{base:.1f}">'
            f"<title>{html_text(rates.label)}: lines per second</title></polygon></g>"
        )
        self.y += RATE_H

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
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}"'
        f' viewBox="0 0 {WIDTH} {height}" role="img" aria-label="run timeline">' + "".join(canvas.parts) + "</svg>"
    )
