"""The production default follow command keeps the container's stderr (issue 10, item 3).

`docker logs` writes what the container wrote on stderr to its own stderr. The run's
default `streams.remote_command` must merge it into stdout, or every error line of a task
is lost. Here the default is used exactly as a run would (the parsed config's value as
the ssh transport's template), through a real loopback sshd whose sessions find a
stand-in `sudo` and `docker` first on their PATH.
"""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.child_exit import ChildExit
from common.messages import Kind
from supervisor.config import parse
from tests.helpers.forked_child import ChildProcess
from tests.helpers.sshd import Sshd
from tests.helpers.waiting import wait_for
from tests.streams.conftest import FAST_BACKOFF, FOLLOWER, read_records, seq_lines, stream_spec, ts

WAIT_S = 20.0

FAKE_DOCKER = """#!{python}
# `docker logs [-f] [--timestamps] [--since TS] CONTAINER`: the container's stderr on our
# stderr (what it has so far), then its stdout on our stdout, followed.
import os, subprocess, sys
args = sys.argv[1:]
assert args[:1] == ["logs"], args
once = [a for a in args if a not in ("-f", "--follow")]
subprocess.run([{python!r}, {follower!r}, *once, "--state-dir", {err!r}], stdout=2, check=False)
os.execv({python!r}, [{python!r}, {follower!r}, *args, "--state-dir", {out!r}])
"""


class PathSshd(Sshd):
    """The test sshd, with `bin_dir` first on every session's PATH."""

    def __init__(self, workdir: Path, bin_dir: Path) -> None:
        super().__init__(workdir)
        self.bin_dir = bin_dir

    def _write_config(self) -> Path:
        config = super()._write_config()
        with open(config, "a") as handle:
            handle.write(f"SetEnv PATH={self.bin_dir}:/usr/bin:/bin\n")
        return config


def fake_docker_host(root: Path) -> tuple[Path, Path, Path]:
    """A bin dir with `sudo` and `docker` stand-ins; the container's stdout and stderr dirs."""
    bin_dir, out, err = root / "bin", root / "stdout", root / "stderr"
    for directory in (bin_dir, out, err):
        directory.mkdir(parents=True)
    sudo = bin_dir / "sudo"
    sudo.write_text('#!/bin/sh\nexec "$@"\n')
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable, follower=str(FOLLOWER), out=str(out), err=str(err)))
    for script in (sudo, docker):
        script.chmod(0o755)
    return bin_dir, out, err


@pytest.fixture(scope="module")
def docker_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PathSshd, Path, Path]]:
    root = tmp_path_factory.mktemp("docker-host")
    bin_dir, out, err = fake_docker_host(root)
    server = PathSshd(root / "sshd", bin_dir).start()
    try:
        yield server, out, err
    finally:
        server.stop()


def test_the_default_remote_command_keeps_the_containers_stderr(
    tmp_path: Path, docker_sshd: tuple[PathSshd, Path, Path]
) -> None:
    sshd, out_dir, err_dir = docker_sshd
    (err_dir / "iris-worker.log").write_bytes(ts(0) + b" Traceback: written on stderr\n")
    (out_dir / "iris-worker.log").write_bytes(seq_lines(1, 4))
    default_command = parse({}).streams.remote_command  # what a run with no [streams] uses
    args = stream_spec(sshd.transport(default_command), address="127.0.0.1", backoff=FAST_BACKOFF)
    path = tmp_path / "run" / "logs" / "vms" / "vm-1.jsonl"
    with ChildProcess(tmp_path / "run", args) as child:
        child.wait_message(Kind.READY, WAIT_S)
        wait_for(lambda: len(read_records(path)) >= 3, WAIT_S, "the container's stdout lines")
        wait_for(lambda: len(read_records(path)) == 4, 2.0, "its stderr line too")
        assert child.stop() == ChildExit.OK
    lines = sorted((str(r["ts"]), str(r["line"])) for r in read_records(path))
    assert lines[0] == (ts(0).decode(), "Traceback: written on stderr")
    assert [text for _, text in lines[1:]] == [f"seq={i} payload" for i in (1, 2, 3)]
