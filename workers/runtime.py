"""What every child does between the supervisor's fork and its entrypoint, and the
context the entrypoint receives.

Order matters and each step has a reason:
1. `setsid()`: a session and process group of its own, so the supervisor can signal the
   child's whole tree at once, and a Ctrl-C on the supervisor's terminal does not reach it.
2. Parent-death signal SIGTERM, then compare `getppid()` with the pid that forked us:
   the supervisor may have died between fork and prctl, in which case the signal will
   never come and we must leave by ourselves.
3. File descriptors: stdin becomes /dev/null; everything the supervisor had open (other
   children's pipes, its signal pipe, its log file) is closed, or another child's EOF
   would never arrive. Only the message pipe survives, moved to fd 3.
4. The run tag goes into the environment, so every program this child execs carries it.
5. Logging is configured anew: this process's pid, its own file descriptors.
6. Signals: SIGTERM and the deadline alarm request a stop (a readable fd); a child that
   has not finished within its grace after that exits hard, killing its process groups.
The entrypoint's return value is the exit code; the process always ends in `os._exit`,
never by returning into the supervisor's stack that fork copied.
"""

import errno
import gc
import importlib
import os
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from common import env, linux, logs
from common.child_exit import ChildExit
from common.deadline import Deadline
from common.messages import Channel
from common.stop import StopRequest
from workers.groups import ProcessGroups

MESSAGE_FD = 3
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# A child's own stop must fit inside the supervisor's TERM-to-KILL grace.
DEFAULT_CHILD_GRACE_S = 1.0


@dataclass
class ChildContext:
    name: str
    role: str
    run_id: str
    run_dir: Path
    deadline: Deadline
    # The entrypoint's own frozen dataclass (`workers.child_args`, `StreamSpec`), built by the
    # supervisor before the fork; each entrypoint binds it to a local of that type first thing.
    args: Any
    channel: Channel
    stop: StopRequest
    groups: ProcessGroups
    grace_s: float
    log: Any
    # SIGUSR1: finish what is in flight, then exit by yourself (a stream catching up with
    # its follower before the run ends). Children that have nothing to finish ignore it;
    # the supervisor stops them after its drain budget either way.
    drain: StopRequest = field(default_factory=StopRequest)

    def hard_exit_in(self) -> float:
        """Seconds until the alarm ends this child (`_install_stop_signals`): before a stop the
        alarm is the deadline, after which the child still gets its grace; after a stop it is
        the grace timer itself. getitimer reads what is left of whichever is armed."""
        left, _interval = signal.getitimer(signal.ITIMER_REAL)
        return left + (0.0 if self.stop.requested() else self.grace_s)

    def cleanup_budget(self, budget_s: float, reserve_s: float, floor_s: float) -> Deadline:
        """A cleanup's own budget, shielded from the run's deadline (which is gone when the deadline
        is what stopped us) but inside the hard exit: `budget_s`, cut short to leave `reserve_s`
        before the alarm; never under `floor_s`, so a late cleanup still makes its one attempt."""
        return Deadline.after(max(floor_s, min(budget_s, self.hard_exit_in() - reserve_s)))


@dataclass(frozen=True)
class Launch:
    """Everything a forked child needs, captured by the supervisor before the fork."""

    name: str
    role: str
    entrypoint: str  # "package.module:function", imported only in the child
    args: object  # the entrypoint's arguments dataclass (None for one that takes none)
    run_id: str
    run_instance: str
    run_dir: Path
    deadline_at: float
    parent_pid: int
    grace_s: float = DEFAULT_CHILD_GRACE_S
    log_level: str = "info"


def _detach(launch: Launch, message_fd: int) -> None:
    os.setsid()
    linux.set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != launch.parent_pid:
        os._exit(ChildExit.PARENT_GONE)
    # The supervisor's signal wake-up pipe is about to be closed; the handlers it set
    # would write to a stale descriptor.
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGALRM):
        signal.signal(sig, signal.SIG_DFL)
    # SIGUSR1 (a drain) arrives blocked (supervisor/spawn.py) and stays so until its handler is
    # set, before any program is started: one sent meanwhile is kept pending, not lost (setting
    # SIG_IGN here would discard it) and not fatal (its default action).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.forget_after_fork()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    if message_fd != MESSAGE_FD:
        os.dup2(message_fd, MESSAGE_FD)
    # close_range(2) on Linux: one system call whatever the descriptor limit.
    os.closerange(MESSAGE_FD + 1, os.sysconf("SC_OPEN_MAX"))
    os.set_inheritable(MESSAGE_FD, False)


def _install_stop_signals(ctx: ChildContext) -> None:
    def hard_exit(_signum: int, _frame: FrameType | None) -> None:
        ctx.groups.kill_all()
        os._exit(ChildExit.HARD_EXIT)

    def arm_hard_exit() -> None:
        # From now on the alarm is the hard-exit timer.
        signal.signal(signal.SIGALRM, hard_exit)
        signal.setitimer(signal.ITIMER_REAL, ctx.grace_s)

    ctx.stop.on_signals({signal.SIGTERM: "sigterm", signal.SIGALRM: "deadline"}, then=arm_hard_exit)
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: ctx.drain.request("drain"))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})  # a drain already sent is taken now
    # A child that learns the deadline exits on its own past it, even if the supervisor
    # is wedged and never sends SIGTERM.
    signal.setitimer(signal.ITIMER_REAL, max(ctx.deadline.remaining(), 0.001))


def _resolve(entrypoint: str) -> Callable[[ChildContext], int]:
    module_name, _, func_name = entrypoint.partition(":")
    func: Callable[[ChildContext], int] = getattr(importlib.import_module(module_name), func_name)
    return func


def _log_crash() -> None:
    try:
        logs.get_logger().error("child_crashed", exc_info=True)
    except BaseException:
        traceback.print_exc()


def child_main(launch: Launch, message_fd: int) -> NoReturn:
    """Runs in the child right after fork; never returns."""
    code: int = ChildExit.CRASHED
    try:
        # Every object inherited from the parent becomes permanent: its finalizers belong
        # to the parent and must never run here. One that imports (a ResourceWarning for
        # a socket the parent leaked) would re-enter the import lock in the middle of
        # this child's own import, which Python 3.11 answers with a KeyError.
        gc.freeze()
        _detach(launch, message_fd)
        gc.enable()
        os.environ[env.RUN_TAG] = launch.run_id
        os.environ[env.RUN_INSTANCE] = launch.run_instance
        os.environ[env.CHILD_NAME] = launch.name
        deadline = Deadline(launch.deadline_at)
        os.environ[env.DEADLINE_UNIX] = f"{deadline.as_unix_time():.3f}"
        linux.set_process_name(f"iris:{launch.name}")
        logs.configure(
            launch.role,
            launch.run_id,
            launch.run_dir / "events.jsonl",
            child=launch.name,
            level=launch.log_level,
        )
        log = logs.get_logger()
        ctx = ChildContext(
            name=launch.name,
            role=launch.role,
            run_id=launch.run_id,
            run_dir=launch.run_dir,
            deadline=deadline,
            args=launch.args,
            channel=Channel(MESSAGE_FD, log),
            stop=StopRequest(),
            groups=ProcessGroups(),
            grace_s=launch.grace_s,
            log=log,
        )
        _install_stop_signals(ctx)
        code = _resolve(launch.entrypoint)(ctx)
        if ctx.stop.reason == "deadline" and code == ChildExit.OK:
            code = ChildExit.DEADLINE
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            _log_crash()
        else:
            # A fact to report, not a bug to trace: the supervisor's restart policy
            # retries with backoff, since space may be freed meanwhile.
            code = ChildExit.DISK_FULL
            logs.get_logger().error("child_disk_full", error=exc.strerror, filename=str(exc.filename or ""))
    except BaseException:
        _log_crash()
    finally:
        sys.stdout.flush()
        os._exit(code)
