"""Tests that call into a running task of theirs: exec a command in it, profile it.

- exec_in_container: a task that sleeps (bounded by the job timeout) until the watch has run
  `echo <token>` in it (ExecInContainer, the token unique to the run): exit code 0 and the token
  on stdout pass; anything else fails naming the task and what came back.
- profile_task: a Python task keeping a CPU half busy is profiled for PROFILE_S (ProfileTask, py-spy's
  collapsed stacks): a non-empty profile passes (its size, format and samples recorded); an empty
  one, the profiler's error, or no answer within the call's limit fails (asked once: each ask
  starts a profiler on the task's host).
A cluster that cannot do either (the embedded one: plain processes; Iris's process runtime without
py-spy, which answers a stand-in profile) says `unimplemented` at the call, and the test is skipped
with its reason. Either way the runner then terminates the job: nothing waits on it.
"""

import time
import uuid
from dataclasses import replace

from common.jsonshape import JsonObject
from workers.controller.model import ControllerError, ErrorCode, JobRequest
from workers.smoke_tests.suite import PlannedTest
from workers.smoke_tests.watch import TestView, Verdict, failed, passed, running_task

EXEC_TIMEOUT_S = 2.0  # the command's own limit: `echo` takes milliseconds
PROFILE_S = 1.0  # how long the task is sampled (Iris's own smoke case: 1 s)
# A call that went out and got no answer in time: the controller may still be doing what it asked.
UNANSWERED = frozenset({ErrorCode.DEADLINE_EXCEEDED, ErrorCode.CONTROLLER_TIMEOUT})
SHOWN_CHARS = 200  # of a command's output, in a failure's reason


# A Python task that keeps a CPU half busy (20 ms on, 20 ms off) in a function a profile names.
_BUSY = """
import sys, time
def smoke_busy(until):
    while time.time() < until:
        spin = time.time() + 0.02
        while time.time() < spin:
            pass
        time.sleep(0.02)
print("profile_task task up, busy for", sys.argv[1], "s", flush=True)
smoke_busy(time.time() + float(sys.argv[1]))
"""


def exec_in_container(base: JobRequest, job_timeout_s: float) -> PlannedTest:
    # The task outlives the test only until the runner terminates it; the job timeout bounds it anyway.
    # Its line is there for the run's task logs (which wait a moment for a task that wrote none).
    argv = (
        "sh",
        "-c",
        'echo "exec_in_container task up, waiting for the exec"; exec sleep "$0"',
        f"{job_timeout_s:.0f}",
    )
    request = replace(base, name="exec_in_container", argv=argv)
    token = f"iris-smoke-exec-{uuid.uuid4().hex[:12]}"
    return PlannedTest("exec_in_container", [request], watch=ExecInContainer(token))


def profile_task(base: JobRequest, job_timeout_s: float) -> PlannedTest:
    request = replace(base, name="profile_task", argv=("python3", "-c", _BUSY, f"{job_timeout_s:.0f}"))
    return PlannedTest("profile_task", [request], watch=ProfileTask())


class ExecInContainer:
    """`echo <token>` run in the running task answers the token on stdout, with exit code 0."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.argv = ("echo", token)

    def step(self, view: TestView) -> Verdict | None:
        found = running_task(view, "a command was run in its task")
        if not isinstance(found, tuple):
            return found
        job, task = found
        started = time.monotonic()
        result = view.controller.exec_in_container(job.job_id, task.task_index, self.argv, EXEC_TIMEOUT_S)
        seconds = round(time.monotonic() - started, 3)
        view.note("task_exec_answered", task=task.task_id, exit_code=result.exit_code, seconds=seconds)
        command = " ".join(self.argv)
        details: JsonObject = {
            "task": task.task_id,
            "command": command,
            "exit_code": result.exit_code,
            "exec_s": seconds,
        }
        where = f"ExecInContainer of {command!r} in task {task.task_id} (job {job.job_id})"
        if result.error:
            return failed(f"{where}: the controller could not run it: {result.error}", **details)
        if result.exit_code != 0 or result.stdout.strip() != self.token:
            return failed(f"{where} returned exit code {result.exit_code}, stdout {_shown(result.stdout)}, "
                          f"stderr {_shown(result.stderr)}; expected {self.token!r} and exit code 0",
                          **details)  # fmt: skip
        return passed(**details)


class ProfileTask:
    """A CPU profile of the running task is not empty; its size, format and samples are recorded."""

    def step(self, view: TestView) -> Verdict | None:
        found = running_task(view, "its task was profiled")
        if not isinstance(found, tuple):
            return found
        job, task = found
        where = f"ProfileTask of task {task.task_id} (job {job.job_id})"
        started = time.monotonic()
        try:
            profile = view.controller.profile_task(job.job_id, task.task_index, PROFILE_S)
        except ControllerError as exc:
            if exc.code not in UNANSWERED:
                raise
            # Asked once: each ask starts a profiler on the task's host, and one that is not back
            # within the call's limit (Iris's own case allows 3 s for 1 s of samples) is the finding.
            return failed(f"{where}: no answer within the call's limit ({exc.code} {exc.details})".strip())
        seconds = round(time.monotonic() - started, 3)
        size = len(profile.data)
        view.note("task_profiled", task=task.task_id, bytes=size, format=profile.format, seconds=seconds)
        details: JsonObject = {"task": task.task_id, "format": profile.format.value, "bytes": size,
                               "samples": collapsed_samples(profile.data), "duration_s": PROFILE_S,
                               "profile_s": seconds}  # fmt: skip
        if profile.error:
            return failed(f"{where} failed: {profile.error}", **details)
        if not profile.data.strip():
            return failed(f"{where} returned an empty profile ({size} bytes, format {profile.format})", **details)
        return passed(**details)


def collapsed_samples(data: bytes) -> int:
    """The samples in py-spy's collapsed stacks (`frame;frame <count>` per line); 0 where none reads."""
    counts = (line.rpartition(b" ")[2] for line in data.splitlines())
    return sum(int(c) for c in counts if c.isdigit())


def _shown(text: str) -> str:
    return repr(text[:SHOWN_CHARS] + ("..." if len(text) > SHOWN_CHARS else ""))
