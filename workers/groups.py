"""Subprocesses of a child, each in a process group of its own.

A child runs its transport (ssh, gcloud, a shell) as a subprocess in a new session so
that the whole tree (gcloud -> ssh, sh -> sleep) can be signalled as one unit with
killpg. The subprocess also gets a parent-death signal, so a child that is SIGKILLed
does not strand it. Only the child that started a group waits on its leader (one reaper
per process); members re-parented away are reaped by the supervisor, a subreaper.

A program written in Python that needs nothing the child has not already got (the
log-service follower) is forked instead (`fork`): no exec, so it shares the interpreter's
pages with the child copy-on-write and pays only for what it imports and writes itself
(a fresh interpreter costs ~14 MiB PSS, a fork ~2 MiB plus its imports). Its protocol is a
program's: an argv, stdin/stdout/stderr pipes, an exit code, its own process group.
"""

import contextlib
import gc
import importlib
import os
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import IO, Any, NoReturn, Protocol

from common import env, linux, processes
from common.deadline import Deadline

# The exit code of a forked entrypoint that raised (the traceback is on its stderr).
FORKED_CRASHED = 70
# How often a stop with a `settled` condition asks it during the grace.
SETTLED_POLL_S = 0.05


class Process(Protocol):
    """What a child needs of a process it started: `subprocess.Popen` or a `ForkedProcess`."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def stdin(self) -> IO[bytes] | None: ...
    @property
    def stdout(self) -> IO[bytes] | None: ...
    @property
    def stderr(self) -> IO[bytes] | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...


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
        self._live: dict[int, Process] = {}

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

    def fork(
        self, entrypoint: str, argv: Sequence[str], name: str, keep_secrets: frozenset[str] = frozenset()
    ) -> "ForkedProcess":
        """Run `entrypoint` ("module:function", called with `argv`, returning an exit code) in a
        forked process named `name` (its comm), in a session of its own, with pipes for stdin,
        stdout and stderr and our environment less every secret it is not named to keep. Only a
        single-threaded caller may fork (a lock held by another thread stays locked in the copy)."""
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            for read_fd, write_fd in pipes:
                os.close(read_fd)
                os.close(write_fd)
            raise
        if pid == 0:
            (stdin, _), (_, stdout), (_, stderr) = pipes
            _run_forked(entrypoint, argv, name, (stdin, stdout, stderr), keep_secrets, parent)
        for fd in (pipes[0][0], pipes[1][1], pipes[2][1]):
            os.close(fd)
        proc = ForkedProcess(pid, os.fdopen(pipes[0][1], "wb"), os.fdopen(pipes[1][0], "rb", buffering=0),
                             os.fdopen(pipes[2][0], "rb", buffering=0))  # fmt: skip
        self._live[pid] = proc
        return proc

    def stop(self, proc: Process, grace_s: float, settled: Callable[[], bool] | None = None) -> int:
        """TERM the group, wait up to `grace_s` for the leader, KILL the group, reap.
        This child started the leader, so it is the one that waits for it. `settled`: once it
        says nothing the program would still do matters, the rest of the grace is not waited for.
        """

        def leader_exited() -> bool:
            return proc.poll() is not None

        def wait(timeout_s: float, done: Callable[[], bool], skippable: bool) -> bool:
            ends = Deadline.after(timeout_s)
            while not processes.wait_exit(proc, ends.within(SETTLED_POLL_S if settled else timeout_s)):
                if ends.expired() or (skippable and settled is not None and settled()):
                    return False
            return done()

        processes.escalate([proc.pid], [], grace_s=grace_s, wait=wait, gone=leader_exited)
        # Members that outlive their leader (a shell's children) go too, even after a clean exit.
        processes.signal_group(proc.pid, signal.SIGKILL)
        code = proc.wait(timeout=processes.KILL_WAIT_S)
        self._live.pop(proc.pid, None)
        return code

    def forget(self, proc: Process) -> None:
        self._live.pop(proc.pid, None)

    def kill_all(self) -> None:
        """Last resort before a hard exit: no grace, no waiting."""
        for pgid in list(self._live):
            processes.signal_group(pgid, signal.SIGKILL)


class ForkedProcess:
    """A forked entrypoint, seen as `subprocess.Popen` sees a program (`Process`)."""

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self.pid, self.stdin, self.stdout, self.stderr = pid, stdin, stdout, stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is not None and not processes.wait_exit(self, Deadline.after(timeout)):
            raise subprocess.TimeoutExpired(str(self.pid), timeout)
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode


def _run_forked(
    entrypoint: str, argv: Sequence[str], name: str, stdio: tuple[int, int, int], keep: frozenset[str], parent: int
) -> NoReturn:
    """In the forked process: become a program of our own (session, stdio, signals, environment,
    no descriptor of the child's: its stream file's lock and its message pipe stay the child's)."""
    code = FORKED_CRASHED
    try:
        # Every inherited object becomes permanent (an O(1) move of the collector's lists): the
        # copy's collections then never write to (and so copy) the pages it shares with the child,
        # nor run finalizers that belong to the child.
        gc.freeze()
        os.setsid()
        _die_with_parent()
        if os.getppid() != parent:  # it died before the death signal was asked for
            os._exit(FORKED_CRASHED)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGUSR1, signal.SIGALRM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # close_range(2): one system call
        # Its sys streams are its own descriptors, whatever the forking process had made of them.
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - they live as long as the process
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        kept = env.without_secrets(os.environ, keep)
        os.environ.clear()
        os.environ.update(kept)
        linux.set_process_name(name)
        module_name, _, func_name = entrypoint.partition(":")
        main: Callable[[list[str]], int] = getattr(importlib.import_module(module_name), func_name)
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage error, as the program would exit on it
        code = exc.code if isinstance(exc.code, int) else FORKED_CRASHED
    except BaseException:  # whatever it was, the program's stderr says it and it exits
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):  # a closed pipe: nothing left to tell
                stream.flush()
        os._exit(code)
