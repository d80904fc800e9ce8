"""The one code path that waits for children.

`waitpid(-1, WNOHANG)` collects every exited child of this process: the ones we forked
and the orphans the kernel re-parented to us because we are a child subreaper. Nothing
else in the supervisor waits (no Popen, no multiprocessing join, no psutil wait):
mixing them on the same pids steals exit statuses.
"""

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Exit:
    pid: int
    exit_code: int  # negative: killed by that signal, as subprocess reports it


def reap_exited() -> list[Exit]:
    exits: list[Exit] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return exits  # no children at all
        if pid == 0:
            return exits  # children exist, none has exited
        exits.append(Exit(pid, os.waitstatus_to_exitcode(status)))
