"""report.html's reading aids: a legend, outcomes by shape and text, tooltips that say why a task
waited and where it ran, names never cut at a desktop's 1400 px or a phone's 390 px, and a
timed-out job's last log lines."""

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.report.browser import assert_nothing_cut, measure
from tests.report.conftest import FinishedRun, run_config
from tests.report.crafted import cli, valid_results, write_run

# An Iris worker id as the real Iris names them, and a test name as long as users write them.
WORKER = "worker-marin-us-central2-tpu-v5p-128-slice-0-3-8f3e2a1b9c"
TEST = "a-rather-long-custom-check-name-for-the-tpu-v5p-coscheduled-slice"
JOB = f"/smoke-1234abcd/{TEST}"
T0 = "2026-11-29T07:00:"


def _lines(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def _task(state: str, worker: str = "", reason: str = "") -> dict[str, Any]:
    return {"task_index": 0, "state": state, "worker_id": worker, "pending_reason": reason}


def _crafted_run(run_dir: Path) -> Path:
    results = valid_results()
    results["tests"][1]["name"] = TEST
    results["streams"][0]["name"] = f"stream:{WORKER}"
    write_run(run_dir, results)
    events = [
        {"event": "phase_started", "phase": "tests", "level": "info", "timestamp": f"{T0}01.000000Z"},
        {"event": "job_launched", "job": JOB, "name": TEST, "level": "info", "timestamp": f"{T0}02.000000Z"},
        {"event": "phase_finished", "phase": "tests", "outcome": "failed", "level": "info",
         "timestamp": f"{T0}20.000000Z"},
    ]  # fmt: skip
    (run_dir / "events.jsonl").write_bytes(_lines(events))
    waiting = "waiting for slice marin-tpu-v5p-128-0 to boot"
    snapshots = [(3, _task("pending", reason=waiting)), (9, _task("running", WORKER)), (15, _task("failed", WORKER))]
    (run_dir / "scheduling.jsonl").write_bytes(_lines([
        {"timestamp": f"{T0}{at:02d}.000000Z", "jobs": [{"job_id": JOB, "name": TEST, "tasks": [task]}]}
        for at, task in snapshots
    ]))  # fmt: skip
    vms = run_dir / "logs" / "vms"
    vms.mkdir(parents=True)
    (vms / f"{WORKER}.jsonl").write_bytes(_lines([{"received": f"{T0}{s:02d}.000000Z"} for s in range(9, 15)]))
    done = cli("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    return run_dir / "report.html"


@pytest.fixture(scope="module")
def crafted_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _crafted_run(tmp_path_factory.mktemp("aids") / "r1")


def test_the_legend_explains_every_colour_and_shape_the_picture_uses(failed_run: FinishedRun) -> None:
    html = (failed_run.run_dir / "report.html").read_text()
    assert 'id="legend"' in html, "no legend"
    legend = html[html.index('id="legend"') :]
    svg = html[html.index('<svg id="timeline"') :]
    svg = svg[: svg.index("</svg>")]
    for kind in set(re.findall(r'class="span ([a-z_-]+)"', svg)) | set(re.findall(r'class="mark ([a-z_]+)"', svg)):
        assert f'class="swatch {kind}"' in legend or f'class="mark {kind}"' in legend, f"{kind} is not in the legend"


def test_outcomes_are_marked_by_shape_and_text_not_colour_alone(failed_run: FinishedRun) -> None:
    html = (failed_run.run_dir / "report.html").read_text()
    svg = html[html.index('<svg id="timeline"') :]
    svg = svg[: svg.index("</svg>")]
    shapes = dict(re.findall(r'<(\w+) class="mark (done|failure)"', svg))
    failure = re.search(r'class="mark failure" d="([^"]+)"', svg)
    done = re.search(r'class="mark done" d="([^"]+)"', svg)
    assert failure and done and failure[1] != done[1], f"done and failure marks differ only by colour: {shapes}"
    assert re.search(r'<text class="outcome[^"]*"[^>]*>[^<]*failed</text>', svg), "a failed task's row says failed"
    assert re.search(r'<td><span class="outcome failed">✘ failed</span></td>', html), "the test table's outcome cell"


def test_tooltips_give_the_pending_reason_the_worker_and_the_times(crafted_page: Path) -> None:
    titles = re.findall(r"<title>([^<]*)</title>", crafted_page.read_text())
    pending = next(t for t in titles if ": pending" in t)
    running = next(t for t in titles if ": running" in t)
    assert "waiting for slice marin-tpu-v5p-128-0 to boot" in pending
    assert WORKER in running
    assert re.search(r"from 3\.0 s to 9\.0 s \(6\.0 s\)", pending), pending


@pytest.mark.parametrize("width", [1400, 390])
def test_names_are_never_cut_at_desktop_and_phone_widths(crafted_page: Path, tmp_path: Path, width: int) -> None:
    layout = measure(crafted_page, width, tmp_path)
    assert_nothing_cut(layout, [WORKER, TEST])
    timeline = next(p for p in layout["pictures"] if p["id"] == "timeline")
    if width >= 1400:
        assert timeline["right"] <= width, "the picture fits a 1400 px window whole"


@pytest.fixture(scope="module")
def timed_out_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    hang = '\n[[tests]]\nname = "hang"\nargv = ["sh", "-c", "echo hung-marker-1; echo hung-marker-2; exec sleep 600"]\n'
    # The job runs ~1 s after its launch on a loaded machine (its slice booting); its markers
    # are out by then, and the timeout only has to come after them.
    return run_config(tmp_path_factory.mktemp("timeout"), '[run]\ntests = ["hang"]\njob_timeout_s = 4\n' + hang)


def test_a_timed_out_jobs_tasks_last_lines_are_fetched_before_it_is_terminated(timed_out_run: FinishedRun) -> None:
    results = orjson.loads((timed_out_run.run_dir / "results.json").read_bytes())
    hang = next(t for t in results["tests"] if t["name"] == "hang")
    assert hang["outcome"] == "timeout", hang
    lines = [line for tail in hang["log_tail"] for line in tail["lines"]]
    assert any("hung-marker-2" in line for line in lines), hang
    assert "hung-marker-2" in (timed_out_run.run_dir / "report.html").read_text()
