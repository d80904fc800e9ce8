"""What the report's colours and shapes mean: the legend of `report.html`, and outcome badges.

An outcome is never told by colour alone (a red/green pair is one colour to many readers):
each badge has a symbol and the word, each mark of the timeline its own shape
(`timeline_svg.mark_path`), and the legend draws every swatch and shape the picture uses
with what it means.
"""

from html import escape

from common.outcome import Outcome
from supervisor.reports import html_text
from supervisor.timeline_svg import mark_path

OUTCOME_SYMBOLS = {
    Outcome.PASSED: "✔",
    Outcome.FAILED: "✘",
    Outcome.ERROR: "✘",
    Outcome.TIMEOUT: "◷",
    Outcome.CANCELLED: "⊘",
    Outcome.SKIPPED: "○",
}

# (CSS class, meaning): every span colour of the timeline...
SPANS = (
    ("phase-ok", "a phase of the run, ended ok"),
    ("phase-bad", "a phase that ended otherwise (its outcome in the tooltip)"),
    ("submitted", "job submitted, its task not listed yet"),
    ("pending", "task pending: the tooltip says why (pending reason)"),
    ("assigned", "task assigned to a worker, or building"),
    ("running", "task running (the tooltip names its worker)"),
    ("unknown", "task in another state (named in the tooltip)"),
    ("boot", "slice booting"),
    ("ready", "slice ready, all its hosts"),
)
# ...every mark's shape...
MARKS = (
    ("done", "ring: task succeeded"),
    ("failure", "cross: task failed, was killed or unschedulable; a phase that failed"),
    ("scale_up", "triangle up: scale-up requested"),
    ("scale_down", "triangle down: scale-down"),
    ("action", "diamond: another autoscaler action"),
)
# ...and every line and area.
LINES = (
    ("failure-line", "dashed red line: a failure (task, phase, error event), across all rows"),
    ("failure-line gap", "dotted orange line: a stream gap (lines may be missing)"),
)


def outcome_badge(outcome: str, *, shout: bool = False) -> str:
    """`✘ failed`, in a span whose class is the outcome: symbol and word, whatever the colour."""
    symbol = OUTCOME_SYMBOLS.get(Outcome(outcome), "?") if outcome in set(Outcome) else "?"
    word = outcome.upper() if shout else outcome
    return f'<span class="outcome {escape(outcome)}">{symbol} {html_text(word)}</span>'


def _key(shape: str, meaning: str) -> str:
    return f'<li><svg class="key" width="26" height="14" viewBox="0 0 26 14">{shape}</svg> {escape(meaning)}</li>'


def render_legend() -> str:
    items = [
        _key(f'<rect class="swatch {css}" x="1" y="2" width="24" height="10"/>', meaning) for css, meaning in SPANS
    ]
    items += [_key(f'<path class="mark {css}" d="{mark_path(css, 13, 7)}"/>', meaning) for css, meaning in MARKS]
    items += [_key(f'<line class="{css}" x1="13" y1="0" x2="13" y2="14"/>', meaning) for css, meaning in LINES]
    items.append(_key('<polygon class="area" points="1,13 8,5 15,9 25,2 25,13"/>', "stream lines per second"))
    items.append(
        "<li>Every rectangle and mark has a tooltip: what, where, why, and its times from the run's start.</li>"
    )
    return f'<details id="legend" open><summary>Legend</summary><ul class="legend">{"".join(items)}</ul></details>'
