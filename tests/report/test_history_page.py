"""`index.html`: a log directory's runs over time per probe, read as untrusted files, seen in Chromium,
and written by the canary after each run."""

import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.canary.daemon import FAKE_RUN, started
from tests.report.browser import assert_nothing_cut, chromium, measure
from tests.report.crafted import cli, valid_results, write_run

PROBE = "control-plane-probe-with-a-rather-long-name-that-must-wrap-somewhere"
REASONS = {"failed": "test_failed", "timeout": "deadline_exceeded", "cancelled": "sigterm"}


def _lines(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def _run(log_dir: Path, name: str, minute: int, outcome: str, **extra: Any) -> Path:
    results = valid_results() | {"run_id": name, "outcome": outcome, "duration_s": 20.0 + minute, **extra}
    results["started_at"] = f"2026-11-29T07:{minute:02d}:00.000000Z"
    results["failure_reasons"] = [] if outcome == "passed" else [REASONS[outcome]]
    run_dir = write_run(log_dir / name, results)
    (run_dir / "report.html").write_text("<!DOCTYPE html><p>report</p>")
    at = f"2026-11-29T07:{minute:02d}:"
    (run_dir / "scheduling.jsonl").write_bytes(_lines([
        {"timestamp": f"{at}01Z", "jobs": [{"name": "j", "tasks": [{"state": "pending"}]}]},
        {"timestamp": f"{at}0{minute % 5 + 2}Z", "jobs": [{"name": "j", "tasks": [{"state": "running"}]}]},
    ]))  # fmt: skip
    (run_dir / "autoscaler.jsonl").write_bytes(_lines([
        {"timestamp": f"{at}00Z", "new_actions": [{"timestamp": f"{at}00Z", "action_type": "scale_up",
                                                    "slice_id": "s-0"}]},
        {"timestamp": f"{at}1{minute % 5}Z",
         "groups": [{"slices": [{"slice_id": "s-0", "vms": [{"state": "ready"}]}]}]},
    ]))  # fmt: skip
    return run_dir


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("history") / "runs"
    for minute, outcome in enumerate(["passed", "failed", "timeout", "passed", "cancelled"]):
        _run(logs, f"20261129T07{minute:02d}00Z-run{minute}", minute, outcome)
    _run(logs, "probe-run-1", 7, "passed", probe=PROBE)
    _run(logs, "probe-run-2", 8, "failed", probe="<b>probe</b>")  # text from results.json, escaped
    write_run(logs / "broken<img src=x>", b'{"run_id": 3')  # unreadable: listed with why
    outside = write_run(logs.parent / "elsewhere", valid_results() | {"run_id": "planted"})
    os.symlink(outside, logs / "planted-link")  # a symlinked run directory is never read
    done = cli("report", "--index", str(logs))
    assert done.returncode == 0, done.stderr
    return logs


def test_index_shows_each_probes_runs_oldest_first_linked_to_their_reports(log_dir: Path) -> None:
    page = (log_dir / "index.html").read_text()
    suite = page[page.index("probe suite") :]
    strip = suite[suite.index('class="strip"') : suite.index("</div>")]
    cells = [cell for cell in re.findall(r'class="cell (\w+)"[^>]*>(.)<', strip) if cell[0] != "unreadable"]
    assert cells == [
        ("passed", "✔"), ("failed", "✘"), ("timeout", "◷"), ("passed", "✔"), ("cancelled", "⊘"),
    ]  # fmt: skip
    for minute in range(5):
        assert f'href="20261129T07{minute:02d}00Z-run{minute}/report.html"' in strip
    assert "2/6 of the last runs passed" in suite, "five runs and an unreadable one"
    assert "probe-run-1/report.html" in page[page.index(f"probe {PROBE}") : page.index("probe suite")]
    assert "unreadable" in page and "broken&lt;img src=x&gt;" in page and "<img" not in page
    assert "planted" not in page, "a symlinked run directory was read"
    assert "deadline_exceeded" in page and "&lt;b&gt;probe&lt;/b&gt;" in page and "<b>" not in page
    assert "<script" not in page


def test_index_plots_duration_scheduling_and_scale_up_per_run(log_dir: Path) -> None:
    page = (log_dir / "index.html").read_text()
    for key in ("duration", "scheduling", "scale-up"):
        plot = page[page.index(f'<svg id="suite-{key}"') :]
        plot = plot[: plot.index("</svg>")]
        assert len(re.findall(r'<circle class="dot"', plot)) == 5, key
        assert 'class="trend"' in plot
    scheduling = page[page.index('<svg id="suite-scheduling"') :]
    text = re.sub("<[^>]+>", "", scheduling[: scheduling.index("</svg>")])
    assert "(max 5.0 s)" in text, "the slowest job's wait, 07:04:01 -> 07:04:06"


@pytest.mark.parametrize("width", [1400, 390])
def test_chromium_shows_the_index_without_cutting_names(log_dir: Path, tmp_path: Path, width: int) -> None:
    page = log_dir / "index.html"
    dom = chromium(["--dump-dom", page.resolve().as_uri()], tmp_path / "profile-dom")
    assert dom.returncode == 0 and "CONSOLE" not in dom.stderr, dom.stderr[-2000:]
    layout = measure(page, width, tmp_path)
    assert_nothing_cut(layout, ["20261129T070400Z-run4", "probe-run-1"])
    labels = " ".join(label["text"] for p in layout["pictures"] for label in p["labels"])
    assert "scheduling latency" in labels and "scale-up latency" in labels


def test_report_wants_a_run_dir_or_an_index_not_both(tmp_path: Path) -> None:
    assert cli("report").returncode == 2
    assert cli("report", str(tmp_path), "--index", str(tmp_path)).returncode == 2
    planted = tmp_path / "link"
    os.symlink(tmp_path, planted)
    done = cli("report", "--index", str(planted))
    assert done.returncode == 2 and "not a directory of runs" in done.stderr


def test_the_canary_writes_the_index_after_each_run(tmp_path: Path) -> None:
    with started(tmp_path, "--interval", "0.2s", "--max-runs", "3", "--run-command", FAKE_RUN) as canary:
        assert canary.wait_exit(60) == 0
        # Renders never overlap a run's wait: one that asks while another renders gets one more
        # render after it, so the page is written after the last run, whatever the timing.
        assert canary.find("index_failed") == []
        last_run = canary.find("run_completed")[-1]["timestamp"]
        assert canary.find("index_written")[-1]["timestamp"] > last_run
    page = (canary.state_dir / "runs" / "index.html").read_text()
    for run_id in canary.run_ids():
        assert run_id in page
    assert "3/3 of the last runs passed" in page
