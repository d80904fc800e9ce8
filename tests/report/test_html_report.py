"""`show` and `report.html`: a finished run read back, and its timeline seen in a real Chromium."""

import re
import subprocess
import sys
from pathlib import Path

from tests.helpers.supervisor_proc import REPO_ROOT
from tests.report.browser import chromium
from tests.report.conftest import FinishedRun


def _cli(*args: str) -> "subprocess.CompletedProcess[str]":
    argv = [sys.executable, "-m", "supervisor", *args]
    return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False)


def test_show_latest_prints_verdict_tests_streams_and_reasons(failed_run: FinishedRun) -> None:
    done = _cli("show", "latest", "--log-dir", str(failed_run.log_dir))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("iris-smoke: FAILED (exit 1): failed tests: broken;")
    assert "failure reasons: test_failed" in done.stdout
    assert re.search(r"^  broken +failed ", done.stdout, re.M) and "stream:controller@" in done.stdout
    assert "\x1b" not in done.stdout, "task output never reaches the terminal raw"


def test_show_refuses_a_directory_without_a_run(tmp_path: Path) -> None:
    done = _cli("show", str(tmp_path))
    assert done.returncode == 2 and "no results.json" in done.stderr and "Traceback" not in done.stderr


def test_every_run_writes_a_self_contained_escaped_report(failed_run: FinishedRun) -> None:
    html = (failed_run.run_dir / "report.html").read_text()
    assert '<svg id="timeline"' in html and "&lt;script&gt;alert(1)" in html
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert len(html) < 200_000


def test_report_regenerates_the_page(failed_run: FinishedRun) -> None:
    page = failed_run.run_dir / "report.html"
    page.unlink()
    done = _cli("report", str(failed_run.run_dir))
    assert done.returncode == 0, done.stderr
    assert '<svg id="timeline"' in page.read_text()


def test_chromium_renders_the_timeline_without_console_errors(failed_run: FinishedRun, tmp_path: Path) -> None:
    url = (failed_run.run_dir / "report.html").resolve().as_uri()
    dom = chromium(["--dump-dom", url], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "CONSOLE" not in dom.stderr, dom.stderr[-2000:]
    svg = dom.stdout[dom.stdout.index('<svg id="timeline"') :]
    svg = svg[: svg.index("</svg>")]
    for kind in ("phase-ok", "submitted", "pending", "boot", "ready"):
        assert f'class="span {kind}"' in svg, kind
    assert 'class="mark failure"' in svg and 'class="area"' in svg and "broken · task 0" in svg
    shot = tmp_path / "shot.png"
    png = chromium(["--window-size=1200,900", f"--screenshot={shot}", url], tmp_path / "profile-shot")
    assert png.returncode == 0 and "CONSOLE" not in png.stderr, png.stderr[-2000:]
    assert shot.stat().st_size > 20_000, "a blank page compresses to a few KiB"
