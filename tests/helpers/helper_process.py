"""A test helper run as a process of its own (a proxy, a hostile controller, a relay): started from
the repository root in a session of its own, its readiness lines read within a bound, and
terminated and reaped on the way out, whatever the test did.

    with running_module("tests.helpers.forward", "--listen", ..., "--to", ...) as popen:
        assert ready_line(popen, "readiness") == "listening"
"""

import contextlib
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_S = 10.0


@contextlib.contextmanager
def running_module(module: str, *args: str) -> Iterator["subprocess.Popen[bytes]"]:
    """`python -m module args…` with its stdout a pipe for its readiness lines; ended after."""
    popen = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO_ROOT, start_new_session=True,
        bufsize=0,  # unbuffered: select() then sees every line that readline() has not taken yet
    )  # fmt: skip
    try:
        yield popen
    finally:
        popen.terminate()
        popen.wait(timeout=READY_S)
        if popen.stdout is not None:
            popen.stdout.close()


def ready_line(popen: "subprocess.Popen[bytes]", what: str, timeout_s: float = READY_S) -> str:
    """The next line the helper prints, within `timeout_s`; fails the test naming `what` otherwise."""
    assert popen.stdout is not None
    ready, _, _ = select.select([popen.stdout], [], [], timeout_s)
    line = popen.stdout.readline().decode().strip() if ready else ""
    assert line, f"{popen.args[2]} printed no {what} within {timeout_s:.0f} s (exit {popen.poll()})"
    return line
