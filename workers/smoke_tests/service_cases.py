"""Iris's smoke cases for what the cluster gives a task beyond running it: log levels, named ports,
endpoints (planned in iris_cases.py; each job named under the run's root, swept at the end).

- log_levels: the task writes an INFO, a WARNING and an ERROR line in the form Iris reads levels
  from (a glog prefix, `I20260102 12:34:56 ...`; common/log_levels.py). Once it succeeded, its
  logs must come back with those three levels, and asked with `min_level=warning`, without the
  INFO line. Workers push logs in batches: lines still missing are asked again for FLUSH_S.
- named_ports: the job asks for ports `http` and `grpc`; its task exits non-zero unless both are
  in its environment as Iris gives them (`IRIS_PORT_HTTP`, `IRIS_PORT_GRPC`), allocated (a port
  number, not 0) and distinct.
- endpoint_registration: the task registers endpoint `<its job>/smoke` with the controller it is
  given, as an Iris task does, then holds it while running; the controller must list it under
  the run's root, for that task, at the address registered, before the task ends.
"""

from dataclasses import replace

from common.jsonshape import Json, JsonObject
from workers.controller.model import ENDPOINT_ADDRESS, Job, JobRequest, JobState, LogLevel, LogLine, job_finished
from workers.smoke_tests.suite import PlannedTest
from workers.smoke_tests.watch import TestView, Verdict, failed, passed, running_task

SERVICE_CASES = ("log_levels", "named_ports", "endpoint_registration")
MARKERS = {"info-marker": LogLevel.INFO, "warning-marker": LogLevel.WARNING, "error-marker": LogLevel.ERROR}
LOG_LINES = 50
FLUSH_S = 10.0  # after the job ended, lines missing from its logs are asked again this long
ENDPOINT = "smoke"
MAX_SHOWN = 300

_LOG_LEVELS = (
    "d=$(date -u '+%Y%m%d %H:%M:%S'); "
    'echo "I$d log_levels info-marker"; echo "W$d log_levels warning-marker"; echo "E$d log_levels error-marker"'
)
_NAMED_PORTS = """
for n in HTTP GRPC; do
  eval "p=\\${IRIS_PORT_$n:-}"
  case "$p" in ''|0|*[!0-9]*) echo "named_ports: IRIS_PORT_$n is '$p', expected an allocated port"; exit 1;; esac
  echo "named_ports: IRIS_PORT_$n=$p"
done
if [ "$IRIS_PORT_HTTP" = "$IRIS_PORT_GRPC" ]; then echo "named_ports: http and grpc share a port"; exit 1; fi
"""


def service_case(name: str, base: JobRequest, endpoint_hold_s: float) -> PlannedTest:
    """The case's job(s) and watch; endpoint_registration's task holds its endpoint `endpoint_hold_s`."""
    if name == "log_levels":
        request = replace(base, name=name, argv=("sh", "-c", _LOG_LEVELS))
        return PlannedTest(name, [request], watch=LogLevels())
    if name == "named_ports":
        return PlannedTest(name, [replace(base, name=name, argv=("sh", "-c", _NAMED_PORTS), ports=("http", "grpc"))])
    request = replace(base, name=name, argv=(), endpoint=ENDPOINT, endpoint_hold_s=endpoint_hold_s)
    return PlannedTest(name, [request], watch=EndpointRegistration())


def _ended_badly(job: Job) -> Verdict:
    return failed(f"job {job.job_id} ended {job.state}{job.error_suffix}")


def _markers(lines: list[LogLine]) -> dict[str, LogLevel]:
    return {m: line.level for line in lines for m in MARKERS if m in line.data}


def _shown(lines: list[LogLine]) -> str:
    text = "; ".join(f"{line.level}: {line.data}" for line in lines) or "no lines"
    return text[:MAX_SHOWN]


class LogLevels:
    """The task's three lines come back with their levels; `min_level=warning` leaves out the INFO one."""

    def __init__(self) -> None:
        self.ended_at: float | None = None

    def step(self, view: TestView) -> Verdict | None:
        [job] = view.jobs()
        if not job_finished(job.state):
            return None
        if job.state is not JobState.SUCCEEDED:
            return _ended_badly(job)
        self.ended_at = view.elapsed_s() if self.ended_at is None else self.ended_at
        lines = view.controller.task_logs(job.job_id, 0, LOG_LINES)
        seen = _markers(lines)
        missing = [m for m in MARKERS if m not in seen]
        if missing and view.elapsed_s() - self.ended_at < FLUSH_S:
            return None
        if missing:
            return failed(f"task {job.job_id}/0: {', '.join(missing)} not in its logs {FLUSH_S:g} s after it ended; "
                          f"FetchLogs returned: {_shown(lines)}")  # fmt: skip
        wrong = [f"{m} came back {seen[m]}, expected {want}" for m, want in MARKERS.items() if seen[m] is not want]
        levels: JsonObject = {m: str(level) for m, level in seen.items()}
        if wrong:
            return failed(f"task {job.job_id}/0: " + "; ".join(wrong), levels=levels)
        filtered = view.controller.task_logs(job.job_id, 0, LOG_LINES, LogLevel.WARNING)
        kept = _markers(filtered)
        if "info-marker" in kept:
            return failed(f"task {job.job_id}/0: min_level=warning still returned the INFO line: {_shown(filtered)}",
                          levels=levels)  # fmt: skip
        lost = [m for m in MARKERS if m != "info-marker" and m not in kept]
        if lost:
            return failed(f"task {job.job_id}/0: min_level=warning left out {', '.join(lost)}: {_shown(filtered)}",
                          levels=levels)  # fmt: skip
        kept_names: list[Json] = [m for m in MARKERS if m in kept]
        return passed(levels=levels, min_level_warning=kept_names)


class EndpointRegistration:
    """The controller lists the task's endpoint under the run's root while the task runs."""

    def __init__(self) -> None:
        self.listed: list[str] = []  # the names listed under the run's root at the last look

    def step(self, view: TestView) -> Verdict | None:
        # Judged only once the controller has the task running: the verdict terminates it, and Iris
        # 0.2.227 loses a kill sent while the task is still `building` (the process outlives its job).
        listed = ", ".join(self.listed) or "none"
        found = running_task(view, f"the controller listed its endpoint {ENDPOINT!r} (listed under the run's "
                                   f"root: {listed})")  # fmt: skip
        if not isinstance(found, tuple):
            return found
        _, task = found
        endpoints = view.controller.list_endpoints()
        self.listed = [e.name for e in endpoints]
        mine = [e for e in endpoints if e.name.endswith(f"/{ENDPOINT}") and e.task_id == task.task_id]
        if not mine:
            return None
        if mine[0].address != ENDPOINT_ADDRESS:
            return failed(f"endpoint {mine[0].name} listed at {mine[0].address}, registered at {ENDPOINT_ADDRESS}")
        return passed(endpoint=mine[0].name, task=mine[0].task_id, listed_after_s=round(view.elapsed_s(), 3))
