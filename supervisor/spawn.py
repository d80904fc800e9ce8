"""Forking a child: the only place the supervisor creates a process.

Fork without exec is cheap (the child shares the interpreter's pages copy-on-write) and
safe only because this process holds no gRPC object and runs no thread: a forked copy
of a running gRPC core or of a lock held by another thread deadlocks. `gc.freeze()`
moves every existing object out of the collector's reach, so the child's first
collection does not write to (and so copy) every page the parent owns.

Either system call can fail for want of resources (`pipe2`: EMFILE, ENFILE; `fork`:
EAGAIN at RLIMIT_NPROC or the pid limit, ENOMEM): the OSError reaches the caller with
nothing left open, and the supervisor treats it as that child failing to start.

SIGUSR1 (a drain) is blocked across the fork: its default action kills, and a stream started
moments before cleanup could get it before its runtime had a handler (it died by the signal,
having said nothing, and the run judged its host silent). Blocked, it stays pending in the child
until the runtime installs its handler and unblocks it (workers/runtime.py).
"""

import gc
import os
import signal
import sys

from workers.runtime import Launch, child_main


def fork_child(launch: Launch) -> tuple[int, int]:
    """Fork and start `launch` in the child; return (pid, read end of its message pipe)."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        gc.unfreeze()
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:
        os.close(read_fd)
        child_main(launch, write_fd)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    gc.unfreeze()
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    return pid, read_fd
