"""`ProcessGroups.fork`: an entrypoint forked as a program of its own (a stream's Python follower).

It gets its argv, stdio pipes, a session and a name of its own, none of the forking process's
descriptors, no secret variable it is not named to keep, and its exit code (or a crash's) reaches
the parent as a program's would.
"""

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from common import env
from common.deadline import Deadline
from common.processes import wait_exit
from workers.groups import FORKED_CRASHED, ForkedProcess, ProcessGroups

SECRET_NAME = "SMOKE_FORK_TOKEN_ENV"
NAME = "iris:test-fork"
WAIT_S = 10.0


def report_main(argv: list[str]) -> int:
    """Say what this process is given and holds, wait for stdin's EOF, exit with argv[0]."""
    held = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
    comm = Path("/proc/self/comm").read_text().strip()
    facts = {"argv": argv, "secret": os.environ.get(SECRET_NAME), "fds": held, "comm": comm,
             "session_leader": os.getsid(0) == os.getpid()}  # fmt: skip
    os.write(1, json.dumps(facts).encode() + b"\n")
    while os.read(0, 4096):
        pass
    return int(argv[0])


def crash_main(_argv: list[str]) -> int:
    raise RuntimeError("boom in the follower")


def sleep_main(_argv: list[str]) -> int:
    time.sleep(60)
    return 0


def _entry(name: str) -> str:
    return f"{__name__}:{name}"


def _close(*procs: ForkedProcess) -> None:
    for proc in procs:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _read_all(proc: ForkedProcess) -> bytes:
    assert proc.stdout is not None
    data = b""
    while chunk := proc.stdout.read(65536):
        data += chunk
    return data


def test_a_forked_entrypoint_runs_as_a_program_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SECRET_NAME, "tok-0123456789abcdef")
    monkeypatch.setattr(env, "_secret_names", {SECRET_NAME})
    held = os.open(tmp_path / "lock", os.O_CREAT | os.O_RDWR)  # inheritable, as a stream file's lock is not
    os.set_inheritable(held, True)
    groups = ProcessGroups()
    try:
        proc = groups.fork(_entry("report_main"), ["7", "--flag=x"], NAME)
        assert proc.stdin is not None
        proc.stdin.close()
        facts = json.loads(_read_all(proc))
        assert proc.wait(WAIT_S) == 7 and proc.poll() == 7
        kept = groups.fork(_entry("report_main"), ["0"], NAME, frozenset({SECRET_NAME}))
        assert kept.stdin is not None
        kept.stdin.close()
        assert json.loads(_read_all(kept))["secret"] == "tok-0123456789abcdef" and kept.wait(WAIT_S) == 0
        _close(proc, kept)
    finally:
        os.close(held)
    assert facts["argv"] == ["7", "--flag=x"] and facts["comm"] == NAME and facts["session_leader"]
    assert facts["secret"] is None, "a secret variable it was not named to keep"
    assert facts["fds"] == [0, 1, 2, 3], facts["fds"]  # stdio and listdir's own descriptor


def test_a_crash_is_an_exit_code_and_a_traceback_on_stderr() -> None:
    proc = ProcessGroups().fork(_entry("crash_main"), [], NAME)
    assert proc.wait(WAIT_S) == FORKED_CRASHED
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _close(proc)
    assert "RuntimeError: boom in the follower" in err and "Traceback" in err


def test_stopping_it_ends_its_group_and_reaps_it() -> None:
    groups = ProcessGroups()
    proc = groups.fork(_entry("sleep_main"), [], NAME)
    assert not wait_exit(proc, Deadline.after(0.2))
    assert os.getpgid(proc.pid) == proc.pid
    assert groups.stop(proc, 2.0) == -signal.SIGTERM
    _close(proc)
    assert not psutil.pid_exists(proc.pid), "reaped"
