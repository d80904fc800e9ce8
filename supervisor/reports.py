"""The human and CI views of a verdict: `summary.md` and `junit.xml`.

Both are rendered from the same dict as `results.json`, after it is written, so the three
can never disagree; that dict is read through `results_file` as `show` reads a file, so
the views only ever see the `RunResult` the file holds.

Everything in them may come from a controller or a task (job names, errors, log lines):
`visible` shows controls, bidi and zero-width characters as escapes in every view, and
summary.md outside its code fences is escaped HTML too (`_md`): a Markdown renderer with
raw HTML on would run a `<svg onload>` in a test's error.
"""

import html
import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

from common.files import write_atomically
from common.jsonshape import JsonObject
from common.outcome import NOT_RUN, Outcome
from supervisor.results_file import from_verdict
from supervisor.run_result import FleetWorker, RunResult, StreamEntry, TestEntry
from supervisor.version import VERSION

ARTEFACTS = (
    "results.json",
    "summary.md",
    "junit.xml",
    "events.jsonl",
    "scheduling.jsonl",
    "autoscaler.jsonl",
    "diagnostics.json",
    "logs/controller.jsonl",
    "logs/vms/",
)
LOG_TAIL_LINES = 20
# XML 1.0 forbids most control characters, which a task's output may well contain.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# What a person must see as an escape, never as itself, in every view of a run (summary.md,
# report.html, junit.xml, `show`): C0 and C1 controls (an ESC sequence reaches the terminal
# that `cat`s the file; CR rewrites a line), line and paragraph separators, and the bidi and
# zero-width format characters, which reorder or hide text ("Trojan Source": an RLO makes
# `exit 1` read as something else in a review). Tab kept.
_CONTROL = re.compile(
    "[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]"
)
_BACKTICKS = re.compile("`+")
_ANT_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def visible(text: str) -> str:
    """`text` with every character above shown as `\\xNN` / `\\uNNNN`: the one escape for every view."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def _xml(value: object) -> str:
    """Text for junit.xml: escaped as everywhere, then what XML cannot carry at all replaced."""
    return _NOT_XML.sub("\ufffd", visible(str(value)))


def html_text(value: object) -> str:
    """Text for report.html (element or attribute): escaped as everywhere, then as HTML."""
    return html.escape(visible(str(value)))


def _md(value: object) -> str:
    """Text for summary.md outside a code fence: escaped, and never HTML (a renderer with raw HTML on runs it)."""
    return html.escape(visible(str(value)), quote=False)


def _fence(lines: list[str]) -> str:
    """A code fence longer than any backtick run inside, so no line of task output can close it."""
    longest = max((len(run) for line in lines for run in _BACKTICKS.findall(line)), default=0)
    return "`" * max(3, longest + 1)


def _cell(value: object) -> str:
    return _md(str(value).replace("\n", " ")).replace("|", "\\|").replace("`", "\\`")


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _number(value: float | None) -> object:
    return "" if value is None else value


def count(value: int | None) -> int:
    """A stream's count as the views print it: 0 when it never reported one (null). A `stale` that
    is a flag (a stream's last PROGRESS says whether it is stale now) counts as 1 or 0."""
    return int(value or 0)


def _tests_section(results: RunResult) -> list[str]:
    lines = ["## Tests", ""]
    if results.observe and not results.tests:
        return [*lines, "None: an observe-only run submits no job.", ""]
    if not results.tests:
        return [*lines, "No test ran.", ""]
    rows: list[list[object]] = [[t.name, t.outcome, _number(t.duration_s), t.error] for t in results.tests]
    lines += [*_table(["test", "outcome", "duration (s)", "error"], rows), ""]
    for test in results.tests:
        for tail in test.log_tail:
            block = [visible(line) for line in tail.lines[-LOG_TAIL_LINES:]]
            fence = _fence(block)
            lines += [f"### {_md(test.name)}: task {_md(tail.task)} (last lines)", "", fence]
            lines += [*block, fence, ""]
    return lines


def _streams_section(results: RunResult) -> list[str]:
    rows: list[list[object]] = [
        [s.name, s.state, *map(count, (s.lines, s.reconnects, s.gaps, s.truncated_lines)),
         "yes" if s.stale else "no", _alive(s)]
        for s in results.streams
    ]  # fmt: skip
    headers = ["stream", "state", "lines", "reconnects", "gaps", "truncated", "stale", "logs alive"]
    return ["## Streams", "", *(_table(headers, rows) if rows else ["No stream ran."]), ""]


def _alive(stream: StreamEntry) -> str:
    """Its host's logs, per worker: a line seen, none in the whole window (stream_no_data), or not judged."""
    if stream.no_data:
        return "no: stream_no_data"
    return "yes" if stream.lines else "not judged"


FLEET_HEADERS = ["worker", "healthy", "slice", "host", "group", "stream", "lines", "gaps", "logs alive", "findings"]
# results.json's logs_alive (run_result.LogsAlive) as a person reads it: only a line seen is alive.
ALIVE_TEXT = {"yes": "yes", "stream_no_data": "no: stream_no_data", "no_lines": "no: no lines",
              "no_stream": "no: no stream"}  # fmt: skip


def fleet_cells(row: FleetWorker) -> list[object]:
    """One fleet table row's cells, as text (summary.md and report.html escape them their own way)."""
    worker = row.worker_id or (row.vm if row.listed else "(no worker listed)")
    healthy = ("-" if row.listed else "not listed") if row.healthy is None else "yes" if row.healthy else "no"
    findings = "; ".join(f"{f.check}: {f.problem}" for f in row.findings)
    return [worker, healthy, row.slice, _number(row.slice_host), row.group, row.stream or "", _number(row.lines),
            _number(row.gaps), ALIVE_TEXT[row.logs_alive], findings]  # fmt: skip


def _fleet_section(results: RunResult) -> list[str]:
    """Every worker: discovery's, its stream's, the fleet checks' (README "Fleet checks and test sets")."""
    rows = [fleet_cells(row) for row in results.fleet]
    return ["## Fleet", "", *(_table(FLEET_HEADERS, rows) if rows else ["No worker listed."]), ""]


def _actions_section(results: RunResult) -> list[str]:
    actions = results.smoke.autoscaler_actions if results.smoke else ()
    rows: list[list[object]] = [
        [a.timestamp or "", a.action_type, a.scale_group, a.slice_id, a.reason] for a in actions
    ]
    headers = ["time", "action", "group", "slice", "reason"]
    return ["## Autoscaler actions", "", *(_table(headers, rows) if rows else ["None recorded."]), ""]


def _jobs_line(results: RunResult) -> list[str]:
    """What the tests child's last sweep saw of the run's jobs (none when it never ran)."""
    swept = results.smoke.jobs_confirmed if results.smoke else None
    if swept is None:
        return []
    line = f"- jobs: {swept.terminated} terminated at the end, {swept.confirmed} confirmed ended"
    return [line + (f"; NOT confirmed ended: {_md(', '.join(swept.unconfirmed))}" if swept.unconfirmed else "")]


def _mode_lines(results: RunResult) -> list[str]:
    """What kind of run it was, and the fix for a refused launch, in the header."""
    lines = []
    if results.smoke and results.smoke.observe:
        seen = results.smoke.observation
        lines.append(f"- observe only: no job submitted; watched {_md(_number(seen.observe_s))} s, "
                     f"{seen.most_workers_listed} worker hosts listed at most, "
                     f"autoscaler {'read' if seen.autoscaler_read else 'NOT read'}")  # fmt: skip
    refused = results.smoke.controller_unauthenticated if results.smoke else None
    if refused and refused.fix:  # a refused LaunchJob's way out
        lines.append(f"- the controller refused LaunchJob: {_md(refused.fix)}")
    return lines


def _cluster_line(results: RunResult) -> str:
    cluster = results.smoke.cluster if results.smoke else None
    kind, address = (cluster.kind, "-" if cluster.address is None else cluster.address) if cluster else ("-", "-")
    return f"- cluster: {_md(kind)} at {_md(address)}"


def render_summary(results: RunResult, run_dir: Path) -> str:
    procs = results.processes
    lines = [
        f"# iris-smoke run {_md(results.run_id)}: {results.outcome.upper()}",
        "",
        f"- started {_md(results.started_at)}, finished {_md(results.finished_at)}"
        f" ({_md(_number(results.duration_s))} s of a {_md(_number(results.timeout_s))} s deadline)",
        f"- exit code {results.exit_code}; failure reasons: {_md(', '.join(results.failure_reasons) or 'none')}",
        f"- iris-smoke {_md(results.version or VERSION)}",
        *_mode_lines(results),
        _cluster_line(results),
        f"- processes: {procs.spawned} spawned, {procs.reaped} reaped, {procs.orphans_reaped} orphans reaped,"
        f" {procs.leaked} leaked, {procs.zombies} zombies",
        *_jobs_line(results),
        "",
    ]
    lines += _tests_section(results) + _fleet_section(results) + _streams_section(results)
    lines += _actions_section(results)
    present = [a for a in ARTEFACTS if (run_dir / a).exists()]
    lines += ["## Artefacts", "", *(f"- `{a}`" for a in present), ""]
    return "\n".join(lines)


def verdict_line(results: RunResult, run_dir: Path) -> str:
    """The one sentence a person reads at the end of a run, whatever the log format; every string escaped."""
    tests, failed = results.tests, results.failed_tests
    if failed:
        what = f"failed tests: {', '.join(failed)}"
    elif results.observe and not tests:
        what = "observe only, no tests"
    else:
        passed = sum(t.outcome is Outcome.PASSED for t in tests)
        others = (f"{n} {o}" for o in NOT_RUN if (n := sum(t.outcome is o for t in tests)))
        what = ", ".join([f"{passed}/{len(tests)} tests passed", *others])
    reasons = ", ".join(results.failure_reasons) or "none"
    lines = sum(count(s.lines) for s in results.streams)
    return visible(
        f"iris-smoke: {results.outcome.upper()} (exit {results.exit_code}): {what}; "
        f"failure reasons: {reasons}; {len(results.streams)} streams, {lines} log lines; "
        f"summary: {run_dir / 'summary.md'}"
    )


def _ant_timestamp(rfc3339: str) -> str:
    """Ant's timestamp: to the second, no fraction, no zone (ours are UTC); anything else, the epoch."""
    stamp = rfc3339[:19]
    return stamp if _ANT_TIMESTAMP.fullmatch(stamp) else "1970-01-01T00:00:00"


def _seconds(value: float | None) -> str:
    """xs:decimal: never an exponent, as str(1e-05) would be."""
    return f"{value or 0:.3f}"


def _log_tail(test: TestEntry) -> list[str]:
    return [line for tail in test.log_tail for line in tail.lines[-LOG_TAIL_LINES:]]


def _xml_lines(lines: list[str]) -> str:
    return "\n".join(_xml(line) for line in lines)


def render_junit(results: RunResult) -> bytes:
    """The strict Ant JUnit format (tests/schemas/junit-ant-strict.xsd): CI tools that validate it accept it."""
    tests = results.tests
    suite = ET.Element(
        "testsuite",
        name="iris-smoke",
        timestamp=_ant_timestamp(results.started_at),
        hostname=_xml(socket.gethostname() or "localhost"),
        tests=str(len(tests)),
        failures=str(sum(t.outcome is Outcome.FAILED for t in tests)),
        errors=str(sum(t.outcome in (Outcome.ERROR, Outcome.TIMEOUT) for t in tests)),
        skipped=str(sum(t.outcome in NOT_RUN for t in tests)),
        time=_seconds(results.duration_s),
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("run_id", results.run_id), ("outcome", results.outcome), ("exit_code", results.exit_code),
        ("observe", str(results.observe).lower()),  # JSON's spelling: true, false
    ):  # fmt: skip
        ET.SubElement(properties, "property", name=name, value=_xml(value))
    out: list[str] = []
    for test in tests:
        case = ET.SubElement(
            suite, "testcase", classname="iris_smoke", name=_xml(test.name), time=_seconds(test.duration_s)
        )
        if test.outcome in NOT_RUN:
            ET.SubElement(case, "skipped", message=_xml(test.error or test.outcome))
            continue
        if test.outcome is Outcome.PASSED:
            continue
        kind = "failure" if test.outcome is Outcome.FAILED else "error"
        message = test.error or test.outcome
        node = ET.SubElement(case, kind, type=test.outcome, message=_xml(message))
        node.text = _xml_lines(_log_tail(test))
        out += [f"== {test.name}: {test.outcome}: {message}", *_log_tail(test)]
    ET.SubElement(suite, "system-out").text = _xml_lines(out)
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(suite)
    xml: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return xml + b"\n"


def write_reports(verdict: JsonObject, run_dir: Path) -> None:
    """summary.md and junit.xml from the run's verdict, read as any results.json is (`results_file`)."""
    results = from_verdict(verdict)
    write_atomically(run_dir / "junit.xml", render_junit(results))
    write_atomically(run_dir / "summary.md", render_summary(results, run_dir).encode())
