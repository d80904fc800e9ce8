"""One follower process (ssh, gcloud, the local cluster's `logs`, the log-service follower) and its pipes.

The follower runs in a process group of its own (ctx.groups), so gcloud -> ssh is ended
as one unit. Its stdin is a pipe that only we hold: closing it is how we ask it to stop
(ssh sends EOF on the channel and the remote wrapper kills `docker logs`; the local
follower exits on stdin EOF). Its stderr is read continuously, because a follower that
fills a 64 KiB stderr pipe nobody reads blocks forever; only the last bytes are kept,
for the disconnect event. A follower written in Python is forked (`ProcessGroups.fork`),
not exec'd: the same pipes, exit codes and process group, at a fraction of the memory.
"""

import contextlib
import errno
import fcntl
import os
import select
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from common.deadline import Deadline
from common.processes import wait_exit
from workers.groups import Process, ProcessGroups

STDERR_TAIL_BYTES = 2048
_STDERR_READ = 64 * 1024

OnData = Callable[[bytes], None]


@dataclass
class Connection:
    proc: Process
    started_at: float
    chunk_bytes: int
    stderr_tail: bytearray = field(default_factory=bytearray)
    out_open: bool = True
    err_open: bool = True
    delivered: bool = False

    @classmethod
    def start(
        cls,
        groups: ProcessGroups,
        argv: Sequence[str],
        chunk_bytes: int,
        keep_secrets: frozenset[str] = frozenset(),
        forked: tuple[str, str] | None = None,
    ) -> "Connection":
        """Exec `argv`; with `forked` (entrypoint, process name), fork that entrypoint with `argv` as its arguments."""
        proc: Process
        if forked is not None:
            proc = groups.fork(forked[0], argv, forked[1], keep_secrets)
        else:
            pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
            proc = groups.start(argv, keep_secrets, **pipes)
        conn = cls(proc, time.monotonic(), chunk_bytes)
        _grow_pipe(conn.out_fd, chunk_bytes)
        return conn

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    @property
    def out_fd(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    @property
    def err_fd(self) -> int:
        assert self.proc.stderr is not None
        return self.proc.stderr.fileno()

    def read_stdout(self) -> bytes:
        data = os.read(self.out_fd, self.chunk_bytes)
        if not data:
            self.out_open = False
        return data

    def read_stderr(self) -> None:
        data = os.read(self.err_fd, _STDERR_READ)
        if not data:
            self.err_open = False
            return
        self.stderr_tail += data
        del self.stderr_tail[:-STDERR_TAIL_BYTES]

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            # EPIPE when flushing: the follower is already gone, which is what we want.
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def read_until_eof(self, timeout_s: float, on_stdout: OnData) -> None:
        """After stdin is closed: keep reading until the follower closes stdout, bounded."""
        end = time.monotonic() + timeout_s
        poller = select.poll()
        for fd, is_open in ((self.out_fd, self.out_open), (self.err_fd, self.err_open)):
            if is_open:
                poller.register(fd, select.POLLIN)
        while self.out_open and (left := end - time.monotonic()) > 0:
            for fd, _events in poller.poll(max(1, int(left * 1000))):
                self._read(fd, on_stdout, poller)

    def _read(self, fd: int, on_stdout: OnData, poller: "select.poll") -> None:
        if fd == self.out_fd:
            data = self.read_stdout()
            if data:
                on_stdout(data)
        else:
            self.read_stderr()
        if (fd == self.out_fd and not self.out_open) or (fd == self.err_fd and not self.err_open):
            poller.unregister(fd)

    def end(self, groups: ProcessGroups, exit_wait_s: float, grace_s: float, on_stdout: OnData) -> int:
        """Close stdin, give the follower `exit_wait_s` to exit, then end its group; drain; reap."""
        self.close_stdin()
        wait_exit(self.proc, Deadline.after(exit_wait_s))
        code = groups.stop(self.proc, grace_s)
        # The whole group is dead now, so what is left in the pipes is all there will be.
        self._drain_nonblocking(on_stdout)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return code

    def _drain_nonblocking(self, on_stdout: OnData) -> None:
        for fd, is_open in ((self.out_fd, self.out_open), (self.err_fd, self.err_open)):
            if not is_open:
                continue
            os.set_blocking(fd, False)
            try:
                while True:
                    data = os.read(fd, self.chunk_bytes)
                    if not data:
                        break
                    if fd == self.out_fd:
                        on_stdout(data)
                    else:
                        self.stderr_tail = (self.stderr_tail + data)[-STDERR_TAIL_BYTES:]
            except BlockingIOError:  # a writer outside the group still holds the pipe
                pass

    def stderr_text(self) -> str:
        return self.stderr_tail.decode("utf-8", "backslashreplace")


def _grow_pipe(fd: int, size: int) -> None:
    # Linux pipes default to 64 KiB; a bigger pipe means fewer wake-ups and bigger
    # batches under load. Above fs.pipe-max-size an unprivileged process gets EPERM,
    # and that is fine: the default still works.
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EINVAL, errno.EBUSY):
            raise
