"""`show` and `report` read a run directory as untrusted input: a copied CI artefact, a shared log dir.

Every string they print is escaped; any malformed file is one line naming it (exit 2), never
a traceback; files are read with caps, a FIFO or a link to /dev/zero is refused at once, and
`show latest` never follows a symlink someone planted in the log directory.
"""

import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.report.crafted import cli, valid_results, write_run

CLEAR = "\x1b[2J\x1b[H"
FORGED = f"{CLEAR}\riris-smoke: PASSED (exit 0): 3/3 tests passed"
# A FIFO or /dev/zero is refused at open: far under this, which only bounds a hang in the test.
REFUSED_WITHIN_S = 20.0


def _refused_in_one_line(done: Any, *names: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr and done.stdout == "", done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    assert "\x1b" not in lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    return str(lines[0])


def test_show_escapes_every_string_it_prints(tmp_path: Path) -> None:
    results = valid_results()
    results["started_at"] = FORGED
    results["run_id"] = FORGED
    results["tests"][0]["name"] = FORGED
    results["tests"][1]["name"] = FORGED
    results["tests"][1]["error"] = FORGED
    results["streams"][0]["name"] = FORGED
    run_dir = write_run(tmp_path / f"run{CLEAR}", results)
    for target in (str(run_dir), "latest"):
        done = cli("show", target, "--log-dir", str(tmp_path))
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout and "\r" not in done.stdout, "no raw ESC or CR reaches the terminal"
        assert done.stdout.startswith("iris-smoke: FAILED (exit 1)")
        assert not [line for line in done.stdout.splitlines() if line.startswith("iris-smoke: PASSED")]
        assert "\\x1b[2J" in done.stdout


def _forged(field: str) -> dict[str, Any]:
    """A results.json with FORGED where the run writes one of a set of words (results.json's enums)."""
    results = valid_results()
    if field == "outcome":
        results["outcome"] = FORGED
    elif field == "failure_reasons[1]":
        results["failure_reasons"] = ["test_failed", FORGED]
    else:
        results["streams"][0]["state"] = FORGED
    return results


@pytest.mark.parametrize("field", ["outcome", "failure_reasons[1]", "streams[0].state"])
def test_show_refuses_an_outcome_a_reason_or_a_state_that_is_not_one(tmp_path: Path, field: str) -> None:
    """Text where the run writes one of a set of words is refused, naming the field, never printed."""
    run_dir = write_run(tmp_path / "run", _forged(field))
    line = _refused_in_one_line(cli("show", str(run_dir)), "results.json", field)
    assert "PASSED" not in line


def test_show_passes_over_fields_a_newer_version_added(tmp_path: Path) -> None:
    """results.json's consumers ignore unknown fields (the schema's promise): new fields need no new version."""
    results = valid_results() | {"added_later": {"x": 1}}
    results["tests"][0]["added_later"] = [1]
    results["cluster"]["added_later"] = "x"
    done = cli("show", str(write_run(tmp_path / "run", results)))
    assert done.returncode == 0 and done.stdout.startswith("iris-smoke: FAILED (exit 1): failed tests: broken;"), done


def _results_with(change: str) -> dict[str, Any]:
    results = valid_results()
    if change == "tests not a list":
        results["tests"] = "simple"
    elif change == "a test not an object":
        results["tests"] = ["simple"]
    elif change == "lines as a string":
        results["streams"][0]["lines"] = "12"
    elif change == "duration as a string":
        results["tests"][0]["duration_s"] = "fast"
    elif change == "exit code as a string":
        results["exit_code"] = "0"
    elif change == "reasons not a list":
        results["failure_reasons"] = "test_failed"
    elif change == "a test without a name":
        del results["tests"][1]["name"]
    elif change == "log lines not a list":
        results["tests"][1]["log_tail"] = [{"job_id": "j", "task": 0, "lines": 7}]
    elif change == "cluster not an object":
        results["cluster"] = "local"
    elif change == "a stream not an object":
        results["streams"] = [None]
    return results


MALFORMED_RESULTS = [
    "tests not a list",
    "a test not an object",
    "lines as a string",
    "duration as a string",
    "exit code as a string",
    "reasons not a list",
    "a test without a name",
    "log lines not a list",
    "cluster not an object",
    "a stream not an object",
]


@pytest.mark.parametrize("command", ["show", "report"])
@pytest.mark.parametrize("change", MALFORMED_RESULTS)
def test_malformed_results_json_is_one_line_and_exit_2(tmp_path: Path, command: str, change: str) -> None:
    run_dir = write_run(tmp_path / "run", _results_with(change))
    _refused_in_one_line(cli(command, str(run_dir)), "results.json")


MALFORMED_JSONL = {
    "scheduling.jsonl: jobs not a list": ("scheduling.jsonl", {"timestamp": "2026-11-29T07:00:01Z", "jobs": "j"}),
    "scheduling.jsonl: a job not an object": ("scheduling.jsonl", {"timestamp": "2026-11-29T07:00:01Z", "jobs": [3]}),
    "scheduling.jsonl: task index a word": (
        "scheduling.jsonl",
        {"timestamp": "2026-11-29T07:00:01Z", "jobs": [{"job_id": "j", "tasks": [{"task_index": "x"}]}]},
    ),
    "scheduling.jsonl: a record not an object": ("scheduling.jsonl", [1, 2]),
    "autoscaler.jsonl: groups not a list": ("autoscaler.jsonl", {"timestamp": "2026-11-29T07:00:01Z", "groups": 1}),
    "autoscaler.jsonl: an action not an object": (
        "autoscaler.jsonl",
        {"timestamp": "2026-11-29T07:00:01Z", "new_actions": ["scale_up"]},
    ),
    "autoscaler.jsonl: vms not a list": (
        "autoscaler.jsonl",
        {"timestamp": "2026-11-29T07:00:01Z", "groups": [{"slices": [{"slice_id": "s", "vms": {"a": 1}}]}]},
    ),
    "events.jsonl: a phase that is a list": (
        "events.jsonl",
        {"event": "phase_started", "phase": ["x"], "timestamp": "2026-11-29T07:00:01Z"},
    ),
    "events.jsonl: an error event without a name": (
        "events.jsonl",
        {"level": "error", "timestamp": "2026-11-29T07:00:01Z"},
    ),
    "events.jsonl: a launched job that is an object": (
        "events.jsonl",
        {"event": "job_launched", "job": {"id": 1}, "timestamp": "2026-11-29T07:00:01Z"},
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_JSONL))
def test_a_malformed_monitor_or_event_file_fails_report_in_one_line(tmp_path: Path, case: str) -> None:
    name, record = MALFORMED_JSONL[case]
    run_dir = write_run(tmp_path / "run", valid_results())
    good = orjson.dumps({"event": "run_started", "timestamp": "2026-11-29T07:00:00Z"})
    (run_dir / name).write_bytes(good + b"\n" + orjson.dumps(record) + b"\n")
    _refused_in_one_line(cli("report", str(run_dir)), name)


def test_a_huge_line_in_a_monitor_file_is_refused_not_read_whole(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", valid_results())
    with (run_dir / "scheduling.jsonl").open("wb") as out:
        out.truncate(1 << 40)  # a sparse terabyte of NULs: one endless line
    started = time.monotonic()
    _refused_in_one_line(cli("report", str(run_dir), timeout_s=REFUSED_WITHIN_S), "scheduling.jsonl")
    assert time.monotonic() - started < REFUSED_WITHIN_S


def _planted(run_dir: Path, kind: str, name: str = "results.json") -> None:
    path = run_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")


@pytest.mark.parametrize("command", ["show", "report"])
@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_results_json_that_is_no_regular_file_is_refused_at_once(tmp_path: Path, command: str, kind: str) -> None:
    run_dir = write_run(tmp_path / "run", valid_results())
    _planted(run_dir, kind)
    started = time.monotonic()
    _refused_in_one_line(cli(command, str(run_dir), timeout_s=REFUSED_WITHIN_S), "results.json")
    assert time.monotonic() - started < REFUSED_WITHIN_S


@pytest.mark.parametrize(
    "name", ["events.jsonl", "scheduling.jsonl", "autoscaler.jsonl", "logs/controller.jsonl", "logs/vms/vm-a.jsonl"]
)
def test_report_refuses_a_fifo_among_the_files_it_reads(tmp_path: Path, name: str) -> None:
    run_dir = write_run(tmp_path / "run", valid_results())
    _planted(run_dir, "fifo", name)
    _refused_in_one_line(cli("report", str(run_dir), timeout_s=REFUSED_WITHIN_S), Path(name).name)


def test_show_latest_ignores_symlinks_planted_in_the_log_dir(tmp_path: Path) -> None:
    log_dir, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    ours = valid_results()
    ours["run_id"] = "ours"
    write_run(log_dir / "ours", ours)
    planted = valid_results()
    planted["run_id"] = "planted"
    write_run(elsewhere / "planted", planted)
    later = time.time() + 60
    os.utime(elsewhere / "planted" / "results.json", (later, later))
    (log_dir / "linked-run").symlink_to(elsewhere / "planted", target_is_directory=True)
    (log_dir / "linked-file").mkdir()
    (log_dir / "linked-file" / "results.json").symlink_to(elsewhere / "planted" / "results.json")
    done = cli("show", "latest", "--log-dir", str(log_dir))
    assert done.returncode == 0, done.stderr
    assert "run ours," in done.stdout and "planted" not in done.stdout, done.stdout


def test_show_latest_with_only_planted_symlinks_finds_no_run(tmp_path: Path) -> None:
    log_dir, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    write_run(elsewhere / "planted", valid_results())
    log_dir.mkdir()
    (log_dir / "linked-run").symlink_to(elsewhere / "planted", target_is_directory=True)
    _refused_in_one_line(cli("show", "latest", "--log-dir", str(log_dir)), "no finished run")
