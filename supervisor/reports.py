"""The human and CI views of a verdict: `summary.md` and `junit.xml`.

Both are rendered from the same dict as `results.json`, after it is written, so the three
can never disagree.
"""

import re
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from common.files import write_atomically
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
# Task output in summary.md: control characters (ESC sequences would reach a terminal that
# `cat`s the file; CR rewrites a line) are shown as \xNN, tab kept.
_CONTROL = re.compile("[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029]")
_BACKTICKS = re.compile("`+")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def visible(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def _fence(lines: list[str]) -> str:
    """A code fence longer than any backtick run inside, so no line of task output can close it."""
    longest = max((len(run) for line in lines for run in _BACKTICKS.findall(line)), default=0)
    return "`" * max(3, longest + 1)


def _cell(value: Any) -> str:
    return visible(str(value).replace("\n", " ")).replace("|", "\\|").replace("`", "\\`")


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _tests_section(results: dict[str, Any]) -> list[str]:
    tests = results.get("tests", [])
    lines = ["## Tests", ""]
    if results.get("observe"):
        return [*lines, "None: an observe-only run submits no job.", ""]
    if not tests:
        return [*lines, "No test ran.", ""]
    rows = [[t["name"], t["outcome"], t.get("duration_s", ""), t.get("error", "")] for t in tests]
    lines += [*_table(["test", "outcome", "duration (s)", "error"], rows), ""]
    for test in tests:
        for tail in test.get("log_tail", []):
            block = [visible(str(line)) for line in tail.get("lines", [])[-LOG_TAIL_LINES:]]
            fence = _fence(block)
            lines += [f"### {test['name']}: task {visible(str(tail.get('task')))} (last lines)", "", fence]
            lines += [*block, fence, ""]
    return lines


def _streams_section(results: dict[str, Any]) -> list[str]:
    streams = results.get("streams", [])
    rows = [
        [
            s["name"],
            s.get("state", ""),
            s.get("lines", 0),
            s.get("reconnects", 0),
            s.get("gaps", 0),
            s.get("truncated_lines", 0),
            "yes" if s.get("stale") else "no",
        ]
        for s in streams
    ]
    headers = ["stream", "state", "lines", "reconnects", "gaps", "truncated", "stale"]
    return ["## Streams", "", *(_table(headers, rows) if rows else ["No stream ran."]), ""]


def _actions_section(results: dict[str, Any]) -> list[str]:
    actions = results.get("autoscaler_actions", [])
    rows = [
        [
            a.get("timestamp", ""),
            a.get("action_type", ""),
            a.get("scale_group", ""),
            a.get("slice_id", ""),
            a.get("reason", ""),
        ]
        for a in actions
    ]
    headers = ["time", "action", "group", "slice", "reason"]
    return ["## Autoscaler actions", "", *(_table(headers, rows) if rows else ["None recorded."]), ""]


def _jobs_line(results: dict[str, Any]) -> list[str]:
    """What the tests child's last sweep saw of the run's jobs (none when it never ran)."""
    swept = results.get("jobs_confirmed")
    if not swept:
        return []
    unconfirmed = swept.get("unconfirmed", [])
    line = f"- jobs: {swept.get('terminated', 0)} terminated at the end, {swept.get('confirmed', 0)} confirmed ended"
    return [line + (f"; NOT confirmed ended: {', '.join(map(str, unconfirmed))}" if unconfirmed else "")]


def _mode_lines(results: dict[str, Any]) -> list[str]:
    """What kind of run it was, and the fix for a refused launch, in the header."""
    lines = []
    if results.get("observe"):
        seen = results.get("observation", {})
        lines.append(f"- observe only: no job submitted; watched {seen.get('observe_s')} s, "
                     f"{seen.get('most_workers_listed', 0)} worker hosts listed at most, "
                     f"autoscaler {'read' if seen.get('autoscaler_read') else 'NOT read'}")  # fmt: skip
    fix = (results.get("controller_unauthenticated") or {}).get("fix")
    if fix:
        lines.append(f"- the controller refused LaunchJob: {fix}")
    return lines


def render_summary(results: dict[str, Any], run_dir: Path) -> str:
    procs = results.get("processes", {})
    lines = [
        f"# iris-smoke run {results['run_id']}: {results['outcome'].upper()}",
        "",
        f"- started {results['started_at']}, finished {results['finished_at']} ({results['duration_s']} s"
        f" of a {results['timeout_s']} s deadline)",
        f"- exit code {results['exit_code']}; failure reasons: {', '.join(results['failure_reasons']) or 'none'}",
        f"- iris-smoke {results.get('version', VERSION)}",
        *_mode_lines(results),
        f"- cluster: {results.get('cluster', {}).get('kind', '-')} at {results.get('cluster', {}).get('address', '-')}",
        f"- processes: {procs.get('spawned', 0)} spawned, {procs.get('reaped', 0)} reaped,"
        f" {procs.get('orphans_reaped', 0)} orphans reaped, {procs.get('leaked', 0)} leaked,"
        f" {procs.get('zombies', 0)} zombies",
        *_jobs_line(results),
        "",
    ]
    lines += _tests_section(results) + _streams_section(results) + _actions_section(results)
    present = [a for a in ARTEFACTS if (run_dir / a).exists()]
    lines += ["## Artefacts", "", *(f"- `{a}`" for a in present), ""]
    return "\n".join(lines)


def failed_tests(results: dict[str, Any]) -> list[str]:
    return [str(t["name"]) for t in results.get("tests", []) if t.get("outcome") not in ("passed", "skipped")]


def verdict_line(results: dict[str, Any], run_dir: Path) -> str:
    """The one sentence a person reads at the end of a run, whatever the log format."""
    tests = results.get("tests", [])
    failed = failed_tests(results)
    if failed:
        what = f"failed tests: {', '.join(visible(name) for name in failed)}"
    elif results.get("observe"):
        what = "observe only, no tests"
    else:
        skipped = sum(t.get("outcome") == "skipped" for t in tests)
        what = f"{len(tests) - skipped}/{len(tests)} tests passed" + (f", {skipped} skipped" if skipped else "")
    reasons = ", ".join(results.get("failure_reasons", [])) or "none"
    lines = sum(int(s.get("lines", 0)) for s in results.get("streams", []))
    return (
        f"iris-smoke: {str(results['outcome']).upper()} (exit {results['exit_code']}): {what}; "
        f"failure reasons: {reasons}; {len(results.get('streams', []))} streams, {lines} log lines; "
        f"summary: {run_dir / 'summary.md'}"
    )


def _ant_timestamp(rfc3339: str) -> str:
    """Ant's timestamp: to the second, no fraction, no zone (ours are UTC)."""
    return rfc3339[:19] if len(rfc3339) >= 19 else "1970-01-01T00:00:00"


def _seconds(value: Any) -> str:
    """xs:decimal: never an exponent, as str(1e-05) would be."""
    return f"{float(value or 0):.3f}"


def _log_tail(test: dict[str, Any]) -> list[str]:
    return [str(line) for t in test.get("log_tail", []) for line in t.get("lines", [])[-LOG_TAIL_LINES:]]


def render_junit(results: dict[str, Any]) -> bytes:
    """The strict Ant JUnit format (tests/schemas/junit-ant-strict.xsd): CI tools that validate it accept it."""
    tests = results.get("tests", [])
    suite = ET.Element(
        "testsuite",
        name="iris-smoke",
        timestamp=_ant_timestamp(results.get("started_at", "")),
        hostname=socket.gethostname() or "localhost",
        tests=str(len(tests)),
        failures=str(sum(t["outcome"] == "failed" for t in tests)),
        errors=str(sum(t["outcome"] in ("error", "timeout") for t in tests)),
        skipped=str(sum(t["outcome"] == "skipped" for t in tests)),
        time=_seconds(results.get("duration_s")),
    )
    properties = ET.SubElement(suite, "properties")
    for name in ("run_id", "outcome", "exit_code", "observe"):
        value = results.get(name, "")
        text = str(value).lower() if isinstance(value, bool) else str(value)  # JSON's spelling: true, false
        ET.SubElement(properties, "property", name=name, value=_xml_safe(text))
    out: list[str] = []
    for test in tests:
        case = ET.SubElement(
            suite, "testcase", classname="iris_smoke", name=test["name"], time=_seconds(test.get("duration_s"))
        )
        if test["outcome"] == "skipped":
            ET.SubElement(case, "skipped", message=_xml_safe(test.get("error", "") or "skipped"))
            continue
        if test["outcome"] == "passed":
            continue
        kind = "failure" if test["outcome"] == "failed" else "error"
        message = test.get("error", "") or test["outcome"]
        node = ET.SubElement(case, kind, type=test["outcome"], message=_xml_safe(message))
        node.text = _xml_safe("\n".join(_log_tail(test)))
        out += [f"== {test['name']}: {test['outcome']}: {message}", *_log_tail(test)]
    ET.SubElement(suite, "system-out").text = _xml_safe("\n".join(out))
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(suite)
    xml: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return xml + b"\n"


def write_reports(results: dict[str, Any], run_dir: Path) -> None:
    write_atomically(run_dir / "junit.xml", render_junit(results))
    write_atomically(run_dir / "summary.md", render_summary(results, run_dir).encode())
