"""docs/examples/syslog-ng.conf, run for real: a real syslog-ng ships a real run's files.

The run's directory is copied, with one more stream file of the longest records the stream
child can write (385 KiB each), and the example is run with only its paths changed. Every
event and stream record must arrive exactly once, equal field for field to its line on disk,
with the file it came from; scheduling.jsonl and autoscaler.jsonl must not be shipped.
"""

import collections
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_for
from tests.report.conftest import run_config
from tests.test_log_pipeline_examples import EVENT_TIME, EXAMPLES
from workers.stream.framing import LineFramer
from workers.stream.records import RecordEncoder
from workers.stream.spec import MAX_LINE_BYTES

SHIP_S = 60.0
STOP_S = 15.0
LONGEST_RECORDS = 3
RUN_CONFIG = '[run]\ntests = ["simple"]\n'


def _syslog_ng() -> str:
    found = shutil.which("syslog-ng") or shutil.which("syslog-ng", path="/usr/sbin")
    assert found, "syslog-ng is missing: apt-get install -y syslog-ng-core (see the README's test command)"
    return found


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    done = run_config(tmp_path_factory.mktemp("shipped-run"), RUN_CONFIG)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.run_dir


def _with_longest_records(run_dir: Path, runs: Path) -> Path:
    copy = runs / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("cluster"))
    encoder = RecordEncoder(run_id=run_dir.name, vm="v" * 63, host=0, role="worker", container="c" * 63)
    lines = b"".join(
        b"2026-11-29T07:00:0%d.123456789Z " % i + b"\x01" * MAX_LINE_BYTES + b"\n" for i in range(LONGEST_RECORDS)
    )
    (copy / "logs" / "vms" / "longest.jsonl").write_bytes(encoder.encode(LineFramer(MAX_LINE_BYTES).feed(lines),
                                                                          EVENT_TIME))  # fmt: skip
    return copy


def _expected(run: Path) -> collections.Counter[tuple[str, str]]:
    files = [run / "events.jsonl", *sorted((run / "logs").rglob("*.jsonl"))]
    return collections.Counter(
        (str(path), json.dumps(json.loads(line), sort_keys=True))
        for path in files
        for line in path.read_text().splitlines()
    )


def _config(runs: Path, out: Path) -> str:
    text = (EXAMPLES / "syslog-ng.conf").read_text()
    assert 'base-dir("/var/lib/iris-smoke/runs")' in text and 'file("/var/log/iris-smoke/shipped.jsonl"' in text
    text = text.replace('base-dir("/var/lib/iris-smoke/runs")', f'base-dir("{runs}")')
    return text.replace('file("/var/log/iris-smoke/shipped.jsonl"', f'file("{out}"')


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_syslog_ng_ships_every_event_and_stream_record_once_with_its_fields(run_dir: Path, tmp_path: Path) -> None:
    binary = _syslog_ng()
    runs, out = tmp_path / "runs", tmp_path / "shipped.jsonl"
    run = _with_longest_records(run_dir, runs)
    expected = _expected(run)
    kinds = collections.Counter("events" if path.endswith("events.jsonl") else "streams" for path, _ in expected)
    assert kinds["events"] > 20 and kinds["streams"] > LONGEST_RECORDS, kinds
    conf = tmp_path / "syslog-ng.conf"
    conf.write_text(_config(runs, out))
    argv = [binary, "-F", "--no-caps", "-f", str(conf), "-R", str(tmp_path / "persist"), "-p", str(tmp_path / "pid")]
    argv += ["-c", str(tmp_path / "ctl")]
    with open(tmp_path / "syslog-ng.out", "wb") as log:
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: len(_lines(out)) >= expected.total() or popen.poll() is not None, SHIP_S,
                 f"{expected.total()} records shipped")  # fmt: skip
        assert popen.poll() is None, (tmp_path / "syslog-ng.out").read_text()[-2000:]
        popen.send_signal(signal.SIGTERM)  # a clean stop flushes: anything shipped twice is in the file then
        popen.wait(timeout=STOP_S)
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
    shipped = [json.loads(line) for line in _lines(out)]
    got = collections.Counter(
        (s["context"]["log"]["file"]["path"], json.dumps(s["record"], sort_keys=True)) for s in shipped
    )
    assert got == expected, f"missing: {list(expected - got)[:3]}, extra: {list(got - expected)[:3]}"
    assert all(s["context"]["host"]["name"] for s in shipped)
    longest = max(len(json.dumps(s["record"])) for s in shipped)
    assert longest > 6 * (MAX_LINE_BYTES - 100), f"the longest record ({longest} bytes) arrived whole"
