"""The first process of every task: keeps the task's process group from outliving its VM host.

The VM host starts `python -m local_cluster.task_runner --parent-pid P -- ARGV...` in a
session of its own and this runs ARGV as its child, in the same process group. Why a
runner and not ARGV directly:
- a SIGKILLed VM host (a dead VM) must take its tasks with it. The kernel's
  parent-death signal does that for one process; this runner asks for it (SIGUSR1,
  so it can be told apart) and answers by SIGKILLing its whole group, grandchildren
  (a shell's `sleep`) included;
- setting that signal in the VM host between fork and exec would need preexec_fn,
  which is unsafe in a process with threads (the VM host has gRPC's).
On a normal stop the VM host signals the group itself; SIGTERM here is then a no-op so
the task, which got the same signal, decides how to end and this runner reports it.
Exit code: the task's, or 128 + the signal that ended it, as a shell reports it.
"""

import os
import signal
import subprocess
import sys
from types import FrameType

from common import linux

DEATH_SIGNAL = signal.SIGUSR1


def _kill_group(_signum: int, _frame: FrameType | None) -> None:
    os.killpg(0, signal.SIGKILL)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    # A Python handler, not SIG_IGN: ignored signals stay ignored across exec, handlers do not.
    pass


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] != "--parent-pid" or argv[2] != "--":
        print("usage: python -m local_cluster.task_runner --parent-pid PID -- ARGV...", file=sys.stderr)
        return 2
    signal.signal(DEATH_SIGNAL, _kill_group)
    linux.set_parent_death_signal(DEATH_SIGNAL)
    if os.getppid() != int(argv[1]):
        return 128 + DEATH_SIGNAL  # the VM host died before the signal was armed
    signal.signal(signal.SIGTERM, _ignore)
    signal.signal(signal.SIGINT, _ignore)
    try:
        proc = subprocess.Popen(argv[3:])
    except OSError as exc:
        print(f"task_runner: cannot start {argv[3]!r}: {exc.strerror}", file=sys.stderr, flush=True)
        return 127
    code = proc.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
