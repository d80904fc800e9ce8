"""Every gcloud call: argv logged (`gcloud_call`), a timeout, stderr kept for the failure.

gcloud is a Python program that starts others (ssh, its own helpers), so each call runs
in a process group of its own (`ProcessGroups`) and a call past its timeout, or cut short
by a stop, has its whole group ended. Output goes to unnamed temporary files rather than
pipes: several calls run at once from one thread, and a call blocked on a full pipe
nobody reads would look exactly like a hang. Never a shell: argv lists only.
"""

import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from common.deadline import Deadline
from common.fdio import readable
from common.jsonshape import JsonObject
from common.processes import wait_exit
from workers.groups import ProcessGroups

STDERR_TAIL_CHARS = 2000
PARALLEL_CALLS = 8
KILL_GRACE_S = 0.5
# How gcloud says a resource is already gone (HTTP 404 from the compute and TPU APIs).
NOT_FOUND_MARKERS = ("was not found", "NOT_FOUND", "notFound", "could not be found")


@dataclass(frozen=True)
class GcloudResult:
    argv: tuple[str, ...]
    exit_code: int | None  # None: it did not finish (timeout, stop) or could not start
    stdout: str
    stderr: str
    elapsed_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def not_found(self) -> bool:
        return self.exit_code not in (0, None) and any(m in self.stderr for m in NOT_FOUND_MARKERS)

    def failure_fields(self) -> JsonObject:
        """What a failure event carries: the exact argv, how it ended, what gcloud said."""
        return {
            "argv": list(self.argv),
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "elapsed_s": round(self.elapsed_s, 3),
            "stderr": self.stderr[-STDERR_TAIL_CHARS:],
        }


class GcloudFailed(Exception):
    def __init__(self, result: GcloudResult, what: str) -> None:
        super().__init__(f"{what}: gcloud exited {result.exit_code}: {result.stderr[-200:]!r}")
        self.result = result


@dataclass
class _Running:
    index: int
    argv: tuple[str, ...]
    proc: "subprocess.Popen[bytes]"
    out: IO[bytes]
    err: IO[bytes]
    started: float
    end: float


class Gcloud:
    def __init__(
        self, binary: str, project: str, groups: ProcessGroups, log: Any, deadline: Deadline, stop_fd: int | None = None
    ) -> None:
        self.binary, self.project = binary, project
        self.groups, self.log, self.deadline, self.stop_fd = groups, log, deadline, stop_fd

    def argv(self, *words: str) -> list[str]:
        return [self.binary, *words, f"--project={self.project}"]

    def run(self, argv: Sequence[str], timeout_s: float) -> GcloudResult:
        return self.run_all([argv], timeout_s)[0]

    def run_all(self, argvs: Sequence[Sequence[str]], timeout_s: float) -> list[GcloudResult]:
        """Run every argv, PARALLEL_CALLS at a time, each bounded by `timeout_s` and the deadline."""
        results: list[GcloudResult | None] = [None] * len(argvs)
        pending = list(enumerate(argvs))
        running: list[_Running] = []
        try:
            while pending or running:
                while pending and len(running) < PARALLEL_CALLS:
                    index, argv = pending.pop(0)
                    started = self._start(index, tuple(argv), timeout_s)
                    if isinstance(started, GcloudResult):
                        results[index] = started
                    else:
                        running.append(started)
                if running and self._wait(running):
                    break  # a stop: what is still running is ended below
                for call in [c for c in running if c.proc.poll() is not None or time.monotonic() >= c.end]:
                    running.remove(call)
                    results[call.index] = self._finish(call)
        finally:
            for call in running:
                results[call.index] = self._finish(call)
        return [r if r is not None else _not_run(argvs[i]) for i, r in enumerate(results)]

    def _start(self, index: int, argv: tuple[str, ...], timeout_s: float) -> "_Running | GcloudResult":
        self.log.info("gcloud_call", argv=list(argv), timeout_s=timeout_s)
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 - closed in _finish
        now = time.monotonic()
        try:
            proc = self.groups.start(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        except OSError as exc:
            out.close()
            err.close()
            result = GcloudResult(argv, None, "", f"cannot run {argv[0]}: {exc.strerror}", 0.0)
            self.log.warning("gcloud_failed", **result.failure_fields())
            return result
        return _Running(index, argv, proc, out, err, now, self.deadline.within(timeout_s).at)

    def _wait(self, running: list[_Running]) -> bool:
        """Until a call ends or reaches its timeout; True if a stop came."""
        wake = [self.stop_fd] if self.stop_fd is not None else []
        wait_exit([c.proc for c in running], Deadline(min(c.end for c in running)), wake)
        return self.stop_fd is not None and readable(self.stop_fd)

    def _finish(self, call: _Running) -> GcloudResult:
        timed_out = call.proc.poll() is None
        # Also after a clean exit: gcloud's own children may be left in its group.
        code = self.groups.stop(call.proc, KILL_GRACE_S)
        result = GcloudResult(
            call.argv,
            None if timed_out else code,
            _read(call.out),
            _read(call.err),
            time.monotonic() - call.started,
            timed_out=timed_out,
        )
        if not result.ok:
            self.log.warning("gcloud_failed", **result.failure_fields())
        return result


def _read(file: IO[bytes]) -> str:
    with file:
        file.seek(0)
        return file.read().decode("utf-8", "replace")


def _not_run(argv: Sequence[str]) -> GcloudResult:
    return GcloudResult(tuple(argv), None, "", "not run: the child was asked to stop", 0.0)
