"""One task on a VM host: its process group, its output, its end.

The task runs under task_runner.py in a session of its own (so one killpg reaches all of
it). A reader thread copies its output, batch by batch as it arrives, into the VM's
container log (prefixed with the task id, as one container log holds every task's
lines) and into a buffer the next heartbeat takes for GetTaskLogs.

Exit is detected with waitid(WNOWAIT): the exited leader stays a zombie, which keeps
its process-group id from being reused, while the group is SIGKILLed to end stragglers
(a shell's background children); only then is the leader reaped.
"""

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from common.processes import GroupStop, signal_group
from iris_smoke_api.v1 import controller_pb2 as pb
from local_cluster.container_log import ContainerLogWriter

TaskKey = tuple[str, int, int]  # job_id, task_index, attempt
READ_BYTES = 64 * 1024
MAX_LINE_BYTES = 16 * 1024
LOG_LINES_BUFFERED = 5000  # per task, between two successful heartbeats
READER_JOIN_S = 1.0


class TaskProcess:
    def __init__(self, key: TaskKey, popen: "subprocess.Popen[bytes]", container: ContainerLogWriter) -> None:
        self.key = key
        self.popen = popen
        self.pid = popen.pid
        self.killed = False
        self._stopping = GroupStop(self.pid)
        self._container = container
        self._prefix = f"[task {key[0]}/{key[1]}] ".encode()
        self._lock = threading.Lock()
        self._lines: list[tuple[int, str]] = []
        self._reader = threading.Thread(target=self._read_output, name=f"task-{key[0]}-{key[1]}", daemon=True)
        self._reader.start()

    @classmethod
    def start(
        cls, key: TaskKey, argv: list[str], env: dict[str, str], cwd: Path, container: ContainerLogWriter
    ) -> "TaskProcess":
        runner = [
            sys.executable,
            "-m",
            "local_cluster.task_runner",
            "--parent-pid",
            str(os.getpid()),
            "--",
            *argv,
        ]
        popen = subprocess.Popen(
            runner, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True,
        )  # fmt: skip
        return cls(key, popen, container)

    def _read_output(self) -> None:
        stdout = self.popen.stdout
        assert isinstance(stdout, io.BufferedReader)  # bufsize=-1 makes the pipe one
        partial = b""
        while chunk := stdout.read1(READ_BYTES):
            partial += chunk
            *lines, partial = partial.split(b"\n")
            if len(partial) > MAX_LINE_BYTES:
                lines.append(partial)
                partial = b""
            self._emit(lines)
        self._emit([partial] if partial else [])
        stdout.close()

    def _emit(self, lines: list[bytes]) -> None:
        if not lines:
            return
        lines = [line[:MAX_LINE_BYTES].rstrip(b"\r") for line in lines]
        stamps = self._container.write_lines([self._prefix + line for line in lines])
        texts = [line.decode("utf-8", "replace") for line in lines]
        with self._lock:
            self._lines.extend(zip(stamps, texts, strict=True))
            del self._lines[:-LOG_LINES_BUFFERED]

    def take_log_chunk(self) -> pb.TaskLogChunk:
        with self._lock:
            lines, self._lines = self._lines, []
        ref = pb.TaskRef(job_id=self.key[0], task_index=self.key[1], attempt=self.key[2])
        return pb.TaskLogChunk(task=ref, lines=[_line(ns, text) for ns, text in lines])

    def give_back(self, chunk: pb.TaskLogChunk) -> None:
        """An unsent chunk goes back in front, so a failed heartbeat loses no output."""
        lines = [(line.timestamp.ToNanoseconds(), line.data) for line in chunk.lines]
        with self._lock:
            self._lines[:0] = lines
            del self._lines[:-LOG_LINES_BUFFERED]

    def terminate(self, grace_s: float) -> None:
        if self._stopping.term(time.monotonic(), grace_s):
            self.killed = True

    def reap_if_exited(self) -> int | None:
        """The task's exit code once its leader has exited (the group is then killed and reaped)."""
        self._stopping.kill_if_due(time.monotonic())
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            info = None
        if info is None and self.popen.returncode is None:
            return None
        return self._finish()

    def wait_and_kill(self, timeout_s: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=timeout_s)
        self._finish()

    def _finish(self) -> int:
        signal_group(self.pid, signal.SIGKILL)
        code = self.popen.wait()
        self._reader.join(READER_JOIN_S)
        return code if code >= 0 else 128 - code


def _line(ns: int, text: str) -> pb.LogLine:
    line = pb.LogLine(data=text)
    line.timestamp.FromNanoseconds(ns)
    return line
