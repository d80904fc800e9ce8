"""Structured logs: one JSON object per line, valid against the schema, never interleaved."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from common import logs
from tests.helpers.supervisor_proc import REPO_ROOT, run_argv, started

SCHEMA = json.loads((REPO_ROOT / "docs" / "log-schema.json").read_text())
WRITERS = 6
EVENTS_EACH = 1500

_WRITER = """
import sys
from pathlib import Path
from common import logs
logs.configure("writer", "concurrent", Path(sys.argv[1]), stdout_format="json", stdout_fd=2)
log = logs.get_logger()
for i in range(int(sys.argv[2])):
    log.info("bulk_event", seq=i, payload="x" * (i * 37 % 3900))
"""


def _stdout_events(output: Path) -> list[dict[str, object]]:
    """The JSON events of a run's stdout; the helper merges stderr in, where the verdict line goes."""
    lines = output.read_text().splitlines()
    return [json.loads(line) for line in lines if not line.startswith("iris-smoke: ")]


def _validate_lines(path: Path) -> list[dict[str, object]]:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    events = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        assert len(line) < 4096, f"line {number} exceeds PIPE_BUF"
        event = json.loads(line)
        errors = sorted(validator.iter_errors(event), key=str)
        assert not errors, f"line {number}: {errors[0].message}"
        events.append(event)
    return events


def test_concurrent_writers_never_interleave_or_cut_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(EVENTS_EACH)],
            cwd=REPO_ROOT,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(WRITERS)
    ]
    assert [w.wait(timeout=60) for w in writers] == [0] * WRITERS
    events = _validate_lines(path)
    assert len(events) == WRITERS * EVENTS_EACH
    by_pid: dict[object, list[object]] = {}
    for event in events:
        by_pid.setdefault(event["pid"], []).append(event["seq"])
    assert all(seqs == list(range(EVENTS_EACH)) for seqs in by_pid.values())


def test_every_line_of_a_real_run_validates(tmp_path: Path) -> None:
    argv = run_argv("schema", tmp_path / "runs", "--demo-streams", "2", "--demo-duration", "0.5")
    with started(argv, tmp_path, "schema") as sup:
        assert sup.wait_exit(20) == 0
        events = _validate_lines(sup.run_dir / "events.jsonl")
        stdout_events = _stdout_events(sup.output)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert not [e for e in stdout_events if list(validator.iter_errors(e))]
    assert {e["role"] for e in events} == {"supervisor", "stream"}
    assert len({e["pid"] for e in events}) == 3
    assert len(stdout_events) == len(events)


def test_oversized_events_are_shortened_and_say_so(tmp_path: Path) -> None:
    out = tmp_path / "stdout"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    try:
        logs.configure("test", "r", tmp_path / "events.jsonl", stdout_format="json", stdout_fd=fd)
        logs.get_logger().info("big_event", blob="y" * 100_000, items=list(range(5000)))
    finally:
        logs.configure("test", stdout_format="json", stdout_fd=2)
        os.close(fd)
    [event] = _validate_lines(tmp_path / "events.jsonl")
    assert event["event"] == "big_event"
    assert set(event["truncated"]) == {"blob", "items"}


def test_a_failing_sink_is_reported_once_and_logging_goes_on(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "stdout"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT)
    try:
        logs.configure("test", "r", Path("/dev/full"), stdout_format="json", stdout_fd=fd)
        for _ in range(3):
            logs.get_logger().info("still_logging")
    finally:
        logs.configure("test", stdout_format="json", stdout_fd=2)
        os.close(fd)
    assert capfd.readouterr().err.count("log_sink_failed") == 1
    assert out.read_text().count("still_logging") == 3


def test_ecs_output_renames_stdout_fields_but_not_the_events_file(tmp_path: Path) -> None:
    argv = run_argv("ecs", tmp_path / "runs", "--demo-streams", "1", "--demo-duration", "0.3", "--log-format", "ecs")
    with started(argv, tmp_path, "ecs") as sup:
        assert sup.wait_exit(20) == 0
        stdout = _stdout_events(sup.output)
        _validate_lines(sup.run_dir / "events.jsonl")
    assert stdout and all("@timestamp" in e and "log.level" in e and "timestamp" not in e for e in stdout)
    assert {e["labels.role"] for e in stdout} == {"supervisor", "stream"}


def test_log_level_filters_stdout_only_and_events_jsonl_stays_complete(tmp_path: Path) -> None:
    argv = run_argv(
        "quiet", tmp_path / "runs", "--demo-streams", "1", "--demo-duration", "0.3", "--log-level", "warning"
    )
    with started(argv, tmp_path, "quiet") as sup:
        assert sup.wait_exit(20) == 0
        events = _validate_lines(sup.run_dir / "events.jsonl")
        stdout = _stdout_events(sup.output)
    assert {"run_started", "child_started", "run_finished"} <= {e["event"] for e in events}
    assert all(e["level"] in ("warning", "error") for e in stdout)


_FAILING_RUN = """
[run]
tests = []
[[tests]]
name = "fails"
argv = ["sh", "-c", "exit 1"]
"""
_PRIORITIES = {"debug": "<7>", "info": "<6>", "warning": "<4>", "error": "<3>"}


def test_under_journald_stdout_lines_carry_priorities_and_failures_are_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "run.toml"
    config.write_text(_FAILING_RUN)
    output = tmp_path / "journal.out"
    output.touch()  # started() opens this very inode as the run's stdout: journald's stream here
    st = output.stat()
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    argv = run_argv("journal", tmp_path / "runs", "--config", str(config), "--timeout", "60")
    with started(argv, tmp_path, "journal") as sup:
        assert sup.wait_exit(60) == 1
        events = _validate_lines(sup.run_dir / "events.jsonl")
        lines = [line for line in sup.output.read_text().splitlines() if line.startswith("<")]
    stdout = [(line[:3], json.loads(line[3:])) for line in lines]
    assert stdout and all(prefix == _PRIORITIES[e["level"]] for prefix, e in stdout)
    by_event = {e["event"]: (prefix, e) for prefix, e in stdout}
    assert by_event["run_finished"][0] == "<4>" and by_event["run_finished"][1]["outcome"] == "failed"
    assert by_event["test_finished"][0] == "<4>"
    assert len(stdout) == len(events), "every event, each with its priority"
