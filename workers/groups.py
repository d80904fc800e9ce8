"""Subprocesses of a child, each in a process group of its own.

A child runs its transport (ssh, gcloud, a shell) as a subprocess in a new session so
that the whole tree (gcloud -> ssh, sh -> sleep) can be signalled as one unit with
killpg. The subprocess also gets a parent-death signal, so a child that is SIGKILLed
does not strand it. Only the child that started a group waits on its leader (one reaper
per process); members re-parented away are reaped by the supervisor, a subreaper.
"""

import os
import select
import signal
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from common import env, linux, processes


def _die_with_parent() -> None:
    # Runs between fork and exec in the new subprocess. The children that call this are
    # single-threaded, which is what makes preexec_fn safe here.
    linux.set_parent_death_signal(signal.SIGKILL)
    # An ignored signal stays ignored across exec. A child ignores SIGINT always and
    # SIGTERM once it is stopping (runtime.py); a program it starts then (a cluster
    # started while a SIGTERM was on its way) would ignore our TERM until the KILL.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


class ProcessGroups:
    """The process groups a child has started, so a stop or a hard exit can end them all."""

    def __init__(self) -> None:
        self._live: dict[int, subprocess.Popen[bytes]] = {}

    def start(
        self, argv: Sequence[str], keep_secrets: frozenset[str] = frozenset(), **popen: Any
    ) -> "subprocess.Popen[bytes]":
        """Start `argv` in a session of its own. Unless given `env`, it inherits ours less every
        secret variable it is not named to keep (common.env.without_secrets)."""
        popen.setdefault("env", env.without_secrets(os.environ, keep_secrets))
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            argv,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - our callers are single-threaded
            **popen,
        )
        self._live[proc.pid] = proc
        return proc

    def stop(self, proc: "subprocess.Popen[bytes]", grace_s: float) -> int:
        """TERM the group, wait up to `grace_s` for the leader, KILL the group, reap.
        This child started the leader, so it is the one that waits for it."""

        def leader_exited() -> bool:
            return proc.poll() is not None

        def wait(timeout_s: float, done: Callable[[], bool], _skippable: bool) -> bool:
            return wait_exit(proc, timeout_s) and done()

        processes.escalate([proc.pid], [], grace_s=grace_s, wait=wait, gone=leader_exited)
        # Members that outlive their leader (a shell's children) go too, even after a clean exit.
        processes.signal_group(proc.pid, signal.SIGKILL)
        code = proc.wait(timeout=processes.KILL_WAIT_S)
        self._live.pop(proc.pid, None)
        return code

    def forget(self, proc: "subprocess.Popen[bytes]") -> None:
        self._live.pop(proc.pid, None)

    def kill_all(self) -> None:
        """Last resort before a hard exit: no grace, no waiting."""
        for pgid in list(self._live):
            processes.signal_group(pgid, signal.SIGKILL)


def wait_exit(proc: "subprocess.Popen[bytes]", timeout_s: float) -> bool:
    """Wait for `proc` to exit without polling: a pidfd becomes readable when it does."""
    if proc.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return proc.poll() is not None
    try:
        select.select([pidfd], [], [], max(0.0, timeout_s))
    finally:
        os.close(pidfd)
    return proc.poll() is not None
