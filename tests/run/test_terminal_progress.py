"""On a terminal the run draws one live progress line; JSON events stay in events.jsonl."""

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.supervisor_proc import REPO_ROOT

RUN_EXIT_S = 60.0


def _read_all(fd: int, popen: "subprocess.Popen[bytes]", timeout_s: float) -> bytes:
    """Read the pty until the run exits (the pty reports EIO once no writer is left)."""
    end = time.monotonic() + timeout_s
    output = b""
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif popen.poll() is not None:
            break
    return output


def test_a_terminal_gets_a_progress_line_and_the_verdict(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "IRIS_SMOKE_LOG_FORMAT"}
    argv = [
        sys.executable,
        "-m",
        "supervisor",
        "run",
        "--run-id",
        "tty",
        "--log-dir",
        str(tmp_path),
        "--tests",
        "simple",
    ]
    popen = subprocess.Popen(argv, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                             start_new_session=True, env=env)  # fmt: skip
    os.close(slave)
    try:
        output = _read_all(master, popen, RUN_EXIT_S)
        assert popen.wait(timeout=RUN_EXIT_S) == 0
    finally:
        os.close(master)
        if popen.poll() is None:
            popen.kill()
            popen.wait()
    text = output.decode(errors="replace")
    assert "\r\x1b[K" in text and "streams" in text and "simple=" in text
    assert "PASSED (exit 0): 1/1 tests passed" in text
    assert '"event":"child_started"' not in text, "info events stay off the terminal"
    assert (tmp_path / "tty" / "events.jsonl").read_text().count("child_started") >= 5
