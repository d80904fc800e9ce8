"""A real command on a terminal: a fresh pty as its stdout and stderr, read until it exits."""

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

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


def run_on_a_terminal(
    args: Sequence[str], extra_env: Mapping[str, str] | None = None, timeout_s: float = RUN_EXIT_S
) -> tuple[int, str]:
    """`python -m supervisor <args>` from the repo root in a session of its own, on a pty, with the
    log format left to the terminal: its exit code and all it wrote (the pty turns \\n into \\r\\n).
    It is killed if still running when this returns or fails."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "IRIS_SMOKE_LOG_FORMAT"} | dict(extra_env or {})
    popen = subprocess.Popen(
        [sys.executable, "-m", "supervisor", *args],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        env=env,
    )
    os.close(slave)
    try:
        text = _read_all(master, popen, timeout_s).decode(errors="replace")
        return popen.wait(timeout=timeout_s), text
    finally:
        os.close(master)
        if popen.poll() is None:
            popen.kill()
            popen.wait()
