"""The canary's files from outside: a config that is not a regular file never blocks it,
and `--check-config` refuses every state directory the daemon refuses at its start.

Through the real `iris-smoke canary` command. As root, "another user" is simulated by
chown to nobody.
"""

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.canary.daemon import FAKE_RUN, canary_argv, started
from tests.helpers.supervisor_proc import REPO_ROOT

EXIT_WAIT_S = 30.0
NOBODY = 65534


def _oneshot(*argv: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(list(argv), cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False)


def test_a_fifo_config_at_sighup_is_refused_and_sigterm_still_stops_the_daemon(tmp_path: Path) -> None:
    """open() on a FIFO blocks until a writer comes; the daemon sat there, deaf to SIGTERM."""
    config = tmp_path / "canary.toml"
    config.write_text('interval = "1h"\n')
    with started(tmp_path, "--config", str(config), "--run-command", FAKE_RUN) as canary:
        config.unlink()
        os.mkfifo(config)
        canary.signal(signal.SIGHUP)
        [failed] = canary.wait_event("config_reload_failed")
        assert "not a regular file (a FIFO)" in failed["reason"] and str(config) in failed["reason"]
        assert failed["kept"] == "previous configuration"
        canary.signal(signal.SIGTERM)
        assert canary.wait_exit(EXIT_WAIT_S) == 0


def test_a_fifo_config_at_the_start_is_refused_with_exit_2(tmp_path: Path) -> None:
    fifo = tmp_path / "canary.toml"
    os.mkfifo(fifo)
    for extra in ((), ("--check-config",)):
        done = _oneshot(*canary_argv(tmp_path / "state", "--config", str(fifo), *extra))
        assert done.returncode == 2, done.stderr
        assert f"--config: {fifo} is not a regular file (a FIFO)" in done.stderr, done.stderr


def _world_writable(state: Path) -> None:
    state.mkdir()
    state.chmod(0o777)


def _not_ours(state: Path) -> None:
    state.mkdir(mode=0o700)
    os.chown(state, NOBODY, NOBODY)


def _a_file(state: Path) -> None:
    state.write_text("")


def _symlinked_lock(state: Path) -> None:
    state.mkdir(mode=0o700)
    (state / "canary.lock").symlink_to(state.parent / "victim")


def _hard_linked_lock(state: Path) -> None:
    state.mkdir(mode=0o700)
    (state.parent / "victim").write_text("")
    os.link(state.parent / "victim", state / "canary.lock")


def _missing_under_a_file(state: Path) -> None:
    state.parent.write_text("")  # state is file/state


@pytest.mark.parametrize(
    ("plant", "state_name", "message"),
    [
        (_world_writable, "state", "writable by every user; chmod o-w"),
        (_not_ours, "state", f"found uid {NOBODY}"),
        (_a_file, "state", "state: not a directory; name a directory"),
        (_symlinked_lock, "state", "canary.lock: is a symlink; remove it"),
        (_hard_linked_lock, "state", "canary.lock: not a plain file of ours"),
        (_missing_under_a_file, "file/state", "cannot"),
    ],
)
def test_check_config_refuses_the_state_dirs_the_start_refuses(
    tmp_path: Path, plant: Callable[[Path], None], state_name: str, message: str
) -> None:
    state = tmp_path / state_name
    plant(state)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    check = _oneshot(*canary_argv(state, "--interval", "1h", "--check-config"))
    start = _oneshot(*canary_argv(state, "--interval", "1h", "--run-command", FAKE_RUN, "--max-runs", "1"))
    assert start.returncode == 2, start.stderr
    assert check.returncode == 2, f"--check-config passed a state directory the start refuses: {start.stderr}"
    assert message in check.stderr and message in start.stderr, (check.stderr, start.stderr)
    assert "--state-dir" in check.stderr and "Traceback" not in check.stderr + start.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "nothing created"
