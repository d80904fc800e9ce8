"""The ssh transport against a real loopback sshd running the fake follower."""

import signal
import subprocess
from pathlib import Path

import psutil

from common.child_exit import ChildExit
from common.messages import Kind
from tests.helpers.forked_child import ChildProcess
from tests.helpers.sshd import Sshd
from tests.helpers.waiting import wait_for
from tests.streams.conftest import (
    FAST_BACKOFF,
    FOLLOWER,
    count_lines,
    follower_template,
    read_records,
    seq_lines,
    stream_spec,
    validate,
)
from workers.hosts import Role, VmHost
from workers.stream.spec import StreamSpec


def remote_followers(state: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if str(FOLLOWER) in cmdline and str(state) in cmdline:
            found.append(proc)
    return found


def ssh_args(sshd: Sshd, state: Path, *follower_flags: str) -> StreamSpec:
    transport = sshd.transport(follower_template(state, *follower_flags))
    return stream_spec(transport, address="127.0.0.1", backoff=FAST_BACKOFF)


def test_ssh_streams_into_jsonl(tmp_path: Path, sshd: Sshd) -> None:
    state, out = tmp_path / "state", tmp_path / "run" / "logs" / "vms" / "vm-1.jsonl"
    state.mkdir()
    (state / "iris-worker.log").write_bytes(seq_lines(0, 500))
    with ChildProcess(tmp_path / "run", ssh_args(sshd, state)) as child:
        child.wait_message(Kind.READY, 10)
        wait_for(lambda: count_lines(out) == 500, 20, "500 records over ssh")
        assert child.stop() == ChildExit.OK
    recs = read_records(out)
    validate(recs)
    assert [r["line"] for r in recs] == [f"seq={i} payload" for i in range(500)]


def test_no_remote_follower_remains_after_stop(tmp_path: Path, sshd: Sshd) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "iris-worker.log").write_bytes(seq_lines(0, 3))
    with ChildProcess(tmp_path / "run", ssh_args(sshd, state)) as child:
        wait_for(lambda: remote_followers(state), 20, "the remote follower under sshd")
        assert child.stop() == ChildExit.OK
    wait_for(lambda: not remote_followers(state), 5, "the remote follower to exit")


def test_killing_local_ssh_ends_the_remote_follower(tmp_path: Path, sshd: Sshd) -> None:
    """The remote wrapper, on its own: SIGKILL of the local ssh (no clean EOF) still ends it."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "iris-worker.log").write_bytes(seq_lines(0, 3))
    transport = sshd.transport(follower_template(state))
    argv = transport.argv(VmHost("vm-1", 0, Role.WORKER, "127.0.0.1"), "iris-worker", None, 60)
    ssh = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: remote_followers(state), 20, "the remote follower")
        ssh.send_signal(signal.SIGKILL)
    finally:
        ssh.kill()
        ssh.wait(timeout=5)
        for pipe in (ssh.stdin, ssh.stdout):
            assert pipe is not None
            pipe.close()
    wait_for(lambda: not remote_followers(state), 10, "the remote follower to exit")


def test_cut_connection_and_killed_child_lose_and_duplicate_nothing(tmp_path: Path, sshd: Sshd) -> None:
    state, run = tmp_path / "state", tmp_path / "run"
    out = run / "logs" / "vms" / "vm-1.jsonl"
    state.mkdir()
    log = state / "iris-worker.log"
    log.write_bytes(seq_lines(0, 300))
    # --since-seconds: the follower replays the whole second, as older docker does.
    args = ssh_args(sshd, state, "--since-seconds")
    first = ChildProcess(run, args).start()
    try:
        wait_for(lambda: count_lines(out) == 300, 20, "the first 300 records")
        [session] = wait_for(sshd.sessions, 10, "the sshd session")
        session.kill()
        with open(log, "ab") as handle:
            handle.write(seq_lines(300, 600))
        wait_for(lambda: len(first.events("stream_connected")) >= 2, 20, "a reconnect")
        wait_for(lambda: count_lines(out) == 600, 20, "600 records after the cut")
        with open(log, "ab") as handle:
            handle.write(seq_lines(600, 2000))
        wait_for(lambda: count_lines(out) > 700, 20, "some of the next records")
        first.kill()
    finally:
        first.close()
    with open(log, "ab") as handle:
        handle.write(seq_lines(2000, 2500))
    with ChildProcess(run, args) as second:
        wait_for(lambda: count_lines(out) == 2500, 30, "all 2500 records after the restart")
        assert second.stop() == ChildExit.OK
        stats = second.wait_message(Kind.STATS, 1).body
    recs = read_records(out)
    validate(recs)
    numbers = [int(str(r["line"]).split()[0].removeprefix("seq=")) for r in recs]
    assert numbers == list(range(2500))
    assert [r["seq"] for r in recs] == list(range(2500))
    assert stats["gaps"] == 0 and stats["duplicates_skipped"] > 0
    wait_for(lambda: not remote_followers(state), 5, "no remote follower")


def test_a_login_to_the_test_sshd_reads_no_startup_file_of_the_real_user(sshd: Sshd) -> None:
    """Each login gets the server's own empty HOME: root's ~/.bashrc (`pyenv init`, which runs
    `pyenv rehash` under a lock) would serialise the many logins a test makes and stall them."""
    argv = sshd.ssh_argv('echo "$HOME"; echo "${PYENV_ROOT:-unset}"')
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.splitlines() == [str(sshd.workdir / "home"), "unset"], done
