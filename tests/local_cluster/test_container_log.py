"""Container logs in `docker logs --timestamps` form and the `local-cluster logs` reader."""

import itertools
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local_cluster.container_log import ContainerLogWriter, format_ts, last_timestamp_ns, parse_ts
from local_cluster.logs_command import first_line_at_or_after
from tests.helpers.cluster import REPO_ROOT

LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z .*$")


def test_timestamps_are_rfc3339_nanoseconds_and_strictly_increasing(tmp_path: Path) -> None:
    """A burst of lines (the clock repeats) still gets strictly increasing timestamps."""
    writer = ContainerLogWriter(tmp_path / "vms/vm/c.log")
    stamps = writer.write_lines([b"line %d" % i for i in range(2000)])
    writer.close()
    assert all(b > a for a, b in itertools.pairwise(stamps))
    lines = (tmp_path / "vms/vm/c.log").read_bytes().splitlines()
    assert len(lines) == 2000 and all(LINE.match(line) for line in lines)
    assert lines[5].split(b" ", 1) == [format_ts(stamps[5]), b"line 5"]
    reopened = ContainerLogWriter(tmp_path / "vms/vm/c.log")
    assert reopened.write_lines([b"after reopen"])[0] > stamps[-1]
    reopened.close()
    assert last_timestamp_ns(tmp_path / "vms/vm/c.log") > stamps[-1]


def test_parse_ts_accepts_rfc3339_with_offsets_and_unix_seconds() -> None:
    ns = parse_ts("2026-11-29T06:51:51.465936123Z")
    assert format_ts(ns) == b"2026-11-29T06:51:51.465936123Z"
    assert parse_ts("2026-11-29T07:51:51.465936123+01:00") == ns
    assert parse_ts("2026-11-29T06:51:51Z") == ns - 465936123
    assert parse_ts(f"{ns // 10**9}.465936123") == ns
    with pytest.raises(ValueError, match="not an RFC 3339"):
        parse_ts("yesterday")


def test_first_line_at_or_after_finds_the_exact_resume_point(tmp_path: Path) -> None:
    writer = ContainerLogWriter(tmp_path / "c.log")
    stamps = writer.write_lines([b"x" * (i % 50) for i in range(500)])
    writer.close()
    data = (tmp_path / "c.log").read_bytes()
    fd = os.open(tmp_path / "c.log", os.O_RDONLY)
    try:
        for i in (0, 1, 17, 250, 498, 499):
            assert first_line_at_or_after(fd, format_ts(stamps[i])) == data.index(format_ts(stamps[i]))
            expected = data.index(format_ts(stamps[i + 1])) if i < 499 else len(data)
            assert first_line_at_or_after(fd, format_ts(stamps[i] + 1)) == expected
        assert first_line_at_or_after(fd, format_ts(stamps[0] - 1)) == 0
    finally:
        os.close(fd)


def _logs(state_dir: Path, *args: str) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(
        [sys.executable, "-m", "local_cluster", "logs", "--state-dir", str(state_dir), *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT,
    )  # fmt: skip


def _read_lines(proc: "subprocess.Popen[bytes]", count: int, timeout_s: float = 30.0) -> list[bytes]:
    assert proc.stdout is not None
    fd, data = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout_s
    while data.count(b"\n") < count:
        readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 65536) if readable else b""
        if not chunk:
            raise AssertionError(f"wanted {count} lines, got {data[-500:]!r}")
        data += chunk
    return data.splitlines()


def test_follow_since_replays_the_line_at_ts_and_follows_new_lines(tmp_path: Path) -> None:
    writer = ContainerLogWriter(tmp_path / "vms/local-cpu-0-w0/iris-worker.log")
    stamps = writer.write_lines([b"one", b"two", b"three", b"four"])
    since = format_ts(stamps[1]).decode()
    proc = _logs(tmp_path, "--follow", "--timestamps", "--since", since, "--exit-on-stdin-close",
                 "local-cpu-0-w0", "iris-worker")  # fmt: skip
    try:
        wanted = [format_ts(stamps[1]) + b" two", format_ts(stamps[2]) + b" three", format_ts(stamps[3]) + b" four"]
        assert _read_lines(proc, 3) == wanted  # inclusive, as docker: the line at since again
        more = writer.write_lines([b"five", b"six"])
        assert _read_lines(proc, 2) == [format_ts(more[0]) + b" five", format_ts(more[1]) + b" six"]
        assert proc.stdin is not None
        proc.stdin.close()  # as when the ssh channel closes
        assert proc.wait(timeout=5) == 0
    finally:
        writer.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()


def test_without_timestamps_prints_the_bare_lines(tmp_path: Path) -> None:
    writer = ContainerLogWriter(tmp_path / "vms/vm-a/iris-controller.log")
    writer.write_lines([b"alpha", b"beta gamma"])
    writer.close()
    proc = subprocess.run(
        [sys.executable, "-m", "local_cluster", "logs", "--state-dir", str(tmp_path), "vm-a", "iris-controller"],
        capture_output=True, timeout=30, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, b"alpha\nbeta gamma\n")


@pytest.mark.parametrize(
    ("vm", "container", "code", "error"),
    [
        ("no-such-vm", "iris-worker", 1, "Error: No such container: iris-worker on VM no-such-vm"),
        ("..", "iris-worker", 2, "Error: invalid VM name '..'"),
        ("vm", "../../etc/passwd", 2, "Error: invalid container name"),
    ],
)
def test_missing_or_invalid_names_fail_clearly(tmp_path: Path, vm: str, container: str, code: int, error: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "local_cluster", "logs", "--state-dir", str(tmp_path), vm, container],
        capture_output=True, text=True, timeout=30, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == code
    assert proc.stderr.startswith(error) and "Traceback" not in proc.stderr


def test_logs_command_loads_neither_grpc_nor_structlog(tmp_path: Path) -> None:
    """`local-cluster logs` is on the hot path of log streaming: it must start light."""
    code = (
        "import sys; from local_cluster.cli import main; "
        f"main(['logs', '--state-dir', {str(tmp_path)!r}, 'vm', 'iris-worker']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'structlog', 'google')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout.strip() == "[]"
