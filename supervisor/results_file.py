"""`results.json` as a type: what summary.md, junit.xml, report.html and `show` render.

Read once, at the edge, by `parse` (from a run's own verdict dict, or from a file someone
handed `show`): every value the views print is checked for its type here, so a file of the
wrong shape is one line naming the field (`results.json: tests[].duration_s is a string,
expected a number`), and the views never meet a dict. Only what the views show is read;
other fields (children, diagnostics, ...) are for machines and stay in the JSON.
"""

from dataclasses import dataclass
from pathlib import Path

from common.jsonshape import JsonObject
from common.outcome import NOT_RUN, Outcome
from supervisor.run_files import RESULTS_MAX_BYTES, FileField, RunDirError, read_json
from supervisor.run_result import JobsConfirmed  # read back as the verdict wrote it

RESULTS_NAME = "results.json"


@dataclass(frozen=True)
class LogTail:
    task: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class TestResult:
    name: str
    outcome: Outcome
    duration_s: float | None
    error: str
    log_tail: tuple[LogTail, ...]


@dataclass(frozen=True)
class StreamResult:
    name: str
    state: str
    lines: int
    reconnects: int
    gaps: int
    truncated_lines: int
    stale: int  # times the stream went stale (a boolean in older files)
    no_data: bool = False  # up for the whole window and no line: its host's logs are not alive (stream_no_data)


@dataclass(frozen=True)
class FleetRow:
    """A row of the fleet table (run_result.FleetWorker): a worker, its stream, the checks' findings."""

    worker_id: str
    listed: bool
    healthy: bool | None
    vm: str
    slice: str
    slice_host: int | None
    group: str
    stream: str
    lines: int | None
    gaps: int | None
    logs_alive: str
    findings: tuple[str, ...]  # `check: problem`


@dataclass(frozen=True)
class ScaleAction:
    timestamp: str
    action_type: str
    scale_group: str
    slice_id: str
    reason: str


@dataclass(frozen=True)
class Processes:
    spawned: int
    reaped: int
    orphans_reaped: int
    leaked: int
    zombies: int


@dataclass(frozen=True)
class Observation:
    """An observe-only run's window and what it saw (the rest of `observation` is for machines)."""

    observe_s: float | None
    most_workers_listed: int
    autoscaler_read: bool


@dataclass(frozen=True)
class RunResults:
    run_id: str
    version: str
    outcome: Outcome
    exit_code: int
    failure_reasons: tuple[str, ...]
    started_at: str
    finished_at: str
    duration_s: float | None
    timeout_s: float | None
    cluster_kind: str
    cluster_address: str
    processes: Processes
    jobs_confirmed: JobsConfirmed | None
    tests: tuple[TestResult, ...]
    streams: tuple[StreamResult, ...]
    fleet: tuple[FleetRow, ...]
    autoscaler_actions: tuple[ScaleAction, ...]
    observe: bool
    observation: Observation
    launch_fix: str  # controller_unauthenticated.fix: a refused LaunchJob's way out

    @property
    def failed_tests(self) -> list[str]:
        return [t.name for t in self.tests if t.outcome not in (Outcome.PASSED, *NOT_RUN)]


def _outcome(field: FileField) -> Outcome:
    text = field.required().as_str()
    if text not in set(Outcome):
        raise field.mismatch(f"one of {', '.join(Outcome)}")
    return Outcome(text)


def _strings(field: FileField) -> tuple[str, ...]:
    return tuple(item.as_str() for item in field.as_list())


def _test(t: FileField) -> TestResult:
    tails = tuple(LogTail(tail.at("task").as_text(), _strings(tail.at("lines"))) for tail in t.at("log_tail").as_list())
    return TestResult(
        t.at("name").required().as_str(), _outcome(t.at("outcome")), t.at("duration_s").as_number(),
        t.at("error").as_str(), tails,
    )  # fmt: skip


def _stream(s: FileField) -> StreamResult:
    stale = s.at("stale")
    return StreamResult(
        s.at("name").required().as_str(), s.at("state").as_str(), s.at("lines").as_count(),
        s.at("reconnects").as_count(), s.at("gaps").as_count(), s.at("truncated_lines").as_count(),
        int(stale.value) if isinstance(stale.value, bool) else stale.as_count(), s.at("no_data").as_bool(),
    )  # fmt: skip


def _optional_count(f: FileField) -> int | None:
    return f.as_count() if f.present else None


def _fleet_row(r: FileField) -> FleetRow:
    findings = tuple(f"{f.at('check').as_str()}: {f.at('problem').as_str()}" for f in r.at("findings").as_list())
    return FleetRow(
        r.at("worker_id").as_str(), r.at("listed").as_bool(), r.at("healthy").as_optional_bool(), r.at("vm").as_str(),
        r.at("slice").as_str(), _optional_count(r.at("slice_host")), r.at("group").as_str(), r.at("stream").as_str(),
        _optional_count(r.at("lines")), _optional_count(r.at("gaps")), r.at("logs_alive").as_str(), findings,
    )  # fmt: skip


def _action(a: FileField) -> ScaleAction:
    names = ("timestamp", "action_type", "scale_group", "slice_id", "reason")
    return ScaleAction(*(a.at(name).as_str() for name in names))


def _jobs_confirmed(j: FileField) -> JobsConfirmed | None:
    if not j.present:
        return None
    return JobsConfirmed(j.at("terminated").as_count(), j.at("confirmed").as_count(), _strings(j.at("unconfirmed")))


def _processes(p: FileField) -> Processes:
    return Processes(*(p.at(n).as_count() for n in ("spawned", "reaped", "orphans_reaped", "leaked", "zombies")))


def _observation(o: FileField) -> Observation:
    return Observation(o.at("observe_s").as_number(), o.at("most_workers_listed").as_count(),
                       o.at("autoscaler_read").as_bool())  # fmt: skip


def parse(top: FileField) -> RunResults:
    """A RunResults from the JSON value of a results.json; RunDirError naming the field if it is not one."""
    if not top.is_object:
        raise top.mismatch("an object (an iris-smoke verdict)")
    cluster = top.at("cluster")
    return RunResults(
        run_id=top.at("run_id").required().as_str(),
        version=top.at("version").as_str(),
        outcome=_outcome(top.at("outcome")),
        exit_code=top.at("exit_code").required().as_count(),
        failure_reasons=_strings(top.at("failure_reasons")),
        started_at=top.at("started_at").as_str(),
        finished_at=top.at("finished_at").as_str(),
        duration_s=top.at("duration_s").as_number(),
        timeout_s=top.at("timeout_s").as_number(),
        cluster_kind=cluster.at("kind").as_str("-"),
        cluster_address=cluster.at("address").as_str("-"),
        processes=_processes(top.at("processes")),
        jobs_confirmed=_jobs_confirmed(top.at("jobs_confirmed")),
        tests=tuple(_test(t) for t in top.at("tests").as_list()),
        streams=tuple(_stream(s) for s in top.at("streams").as_list()),
        fleet=tuple(_fleet_row(r) for r in top.at("fleet").as_list()),
        autoscaler_actions=tuple(_action(a) for a in top.at("autoscaler_actions").as_list()),
        observe=top.at("observe").as_bool(),
        observation=_observation(top.at("observation")),
        launch_fix=top.at("controller_unauthenticated").at("fix").as_str(),
    )


def from_verdict(results: JsonObject) -> RunResults:
    """The run's own verdict dict (`Verdict.as_dict()`), read as any results.json is."""
    return parse(FileField(RESULTS_NAME, "", results))


def read_results(run_dir: Path) -> RunResults:
    """The results.json of `run_dir`, read with a cap and checked; RunDirError (one line) otherwise."""
    top = read_json(run_dir / RESULTS_NAME, RESULTS_MAX_BYTES)
    if top is None:
        raise RunDirError(f"{run_dir}: no {RESULTS_NAME}; is it a run directory?")
    try:
        return parse(top)
    except RunDirError as exc:
        raise RunDirError(f"{run_dir}/{exc}") from None
