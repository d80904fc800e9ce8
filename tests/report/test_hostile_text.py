"""What the run writes for people shows a controller's hostile text, never obeys it.

summary.md: no raw HTML outside code fences (a CommonMark renderer with raw HTML on ran
`<svg onload>`); summary.md, report.html and junit.xml: bidi and zero-width characters shown
escaped (they reorder or hide what a reviewer reads); junit.xml: no C1 control, and still
valid against the strict Ant schema.
"""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson

from supervisor.reports import write_reports
from tests.helpers.supervisor_proc import REPO_ROOT
from tests.report.crafted import cli, valid_results, write_run

JUNIT_XSD = REPO_ROOT / "tests" / "schemas" / "junit-ant-strict.xsd"
SVG = "<svg onload=alert(1)>"
IMG = '<img src=x onerror="alert(2)">&amp'
# Right-to-left override, isolates, zero-width space and joiners, word joiner, byte order mark.
HIDDEN = "\u202a\u202e\u2066\u2067\u2068\u2069\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"
C1 = "\x85\x9b\x9f"


def _hostile() -> dict[str, Any]:
    results = valid_results()
    results["run_id"] = f"r{SVG}"
    results["cluster"]["address"] = f"{SVG}{HIDDEN}"
    results["jobs_confirmed"]["unconfirmed"] = [f"/smoke/{SVG}"]
    broken = results["tests"][1]
    broken["name"] = f"job {SVG} {HIDDEN}"
    broken["error"] = f"{IMG} {HIDDEN} {C1}"
    broken["log_tail"] = [{"job_id": f"/smoke/{SVG}", "task": 0,
                           "lines": [f"<script>alert(3)</script> {HIDDEN} {C1}", "last"]}]  # fmt: skip
    results["streams"][0]["name"] = f"stream:{SVG}{HIDDEN}"
    results["autoscaler_actions"][0]["reason"] = f"{SVG}{HIDDEN}"
    return results


def _outside_fences(markdown: str) -> str:
    """The text a CommonMark renderer treats as Markdown (and raw HTML): all but fenced blocks."""
    kept, fence = [], ""
    for line in markdown.splitlines():
        opening = re.match(r"(`{3,})", line)
        if fence:
            fence = "" if line.strip() == fence else fence
        elif opening:
            fence = opening[1]
        else:
            kept.append(line)
    return "\n".join(kept)


def _jsonl(path: Path, *records: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def _timeline_files(run_dir: Path) -> None:
    """What the report's timeline draws, with hostile names: jobs, tasks' states, slices, a stream file."""
    at = "2026-11-29T07:00:01.000000Z"
    job, slice_id = f"/smoke/{SVG}{HIDDEN}", f"slice-{HIDDEN}"
    _jsonl(
        run_dir / "events.jsonl",
        {"event": "phase_started", "phase": f"tests{HIDDEN}", "timestamp": at},
        {"event": "job_launched", "job": job, "name": f"job {HIDDEN}", "timestamp": at},
        {"event": "child_failed", "level": "error", "child": f"stream:{HIDDEN}", "timestamp": at},
    )
    task = {"task_index": 0, "state": f"running{HIDDEN}"}
    _jsonl(run_dir / "scheduling.jsonl", {"timestamp": at, "jobs": [{"job_id": job, "tasks": [task]}]})
    action = {"timestamp": at, "action_type": f"scale_up{HIDDEN}", "scale_group": HIDDEN, "slice_id": slice_id}
    _jsonl(run_dir / "autoscaler.jsonl", {"timestamp": at, "new_actions": [action]})
    _jsonl(run_dir / "logs" / "vms" / f"vm{HIDDEN}.jsonl", {"received": at})


def _written(tmp_path: Path) -> Path:
    results = _hostile()
    run_dir = write_run(tmp_path / "run", results)
    _timeline_files(run_dir)
    write_reports(results, run_dir)
    return run_dir


def test_summary_md_carries_no_raw_html_outside_its_fences(tmp_path: Path) -> None:
    summary = (_written(tmp_path) / "summary.md").read_text()
    markdown = _outside_fences(summary)
    assert "&lt;svg onload=alert(1)&gt;" in markdown, "the job name and the address, escaped"
    assert "&lt;img src=x onerror=" in markdown and "&amp;amp" in markdown, "a test error, escaped"
    assert "<" not in markdown and ">" not in markdown, [line for line in markdown.splitlines() if "<" in line]
    assert not re.search(r"&(?!(amp|lt|gt);)", markdown), "every & is an entity"
    # Inside a fence nothing is HTML: the task's output stays as it was.
    assert "<script>alert(3)</script>" in summary


def test_bidi_and_zero_width_are_shown_escaped_in_all_three_outputs(tmp_path: Path) -> None:
    run_dir = _written(tmp_path)
    done = cli("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    for name in ("summary.md", "report.html", "junit.xml"):
        text = (run_dir / name).read_text()
        raw = sorted({f"U+{ord(c):04X}" for c in text if c in HIDDEN})
        assert not raw, f"{name} carries {raw} raw"
        assert "\\u202e" in text and "\\ufeff" in text and "\\u200b" in text, name


def test_junit_has_no_c1_control_and_stays_strictly_valid(tmp_path: Path) -> None:
    junit = _written(tmp_path) / "junit.xml"
    text = junit.read_text()
    assert not [c for c in text if "\x7f" <= c <= "\x9f"], "C1 controls removed from junit.xml"
    assert "\\x85" in text, "shown escaped, as summary.md shows them"
    xmllint = shutil.which("xmllint")
    assert xmllint, "xmllint is missing: install Debian's libxml2-utils (apt-get install libxml2-utils)"
    argv = [xmllint, "--noout", "--schema", str(JUNIT_XSD), str(junit)]
    checked = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr
