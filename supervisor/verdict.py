"""The verdict of a run: `results.json`, written once, atomically, at the very end."""

import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from common.files import write_atomically
from common.jsonshape import JsonObject
from common.outcome import ExitCode, FailureReason, Outcome, exit_code_for, outcome_for
from supervisor.run_result import SCHEMA_VERSION as SCHEMA_VERSION
from supervisor.run_result import Child, Processes, RunResult, SmokeSections, as_json
from supervisor.version import VERSION

NO_PROCESSES = Processes(0, 0, 0, 0, 0, (), 0, False)


@dataclass
class Verdict:
    run_id: str
    started_unix: float
    timeout_s: float
    reasons: list[FailureReason] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    processes: Processes | None = None  # None only before the stop (a verdict is written after it)
    smoke: SmokeSections | None = None

    def add(self, reason: FailureReason) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    @property
    def outcome(self) -> Outcome:
        return outcome_for(self.reasons)

    @property
    def exit_code(self) -> ExitCode:
        return exit_code_for(self.outcome, self.reasons)

    def result(self) -> RunResult:
        finished = time.time()
        return RunResult(
            schema_version=SCHEMA_VERSION, run_id=self.run_id, version=VERSION,
            started_at=_rfc3339(self.started_unix), finished_at=_rfc3339(finished),
            duration_s=round(finished - self.started_unix, 3), timeout_s=self.timeout_s,
            outcome=self.outcome, exit_code=self.exit_code, failure_reasons=tuple(self.reasons),
            children=tuple(self.children), processes=self.processes or NO_PROCESSES, smoke=self.smoke,
        )  # fmt: skip

    def as_dict(self) -> JsonObject:
        """results.json's object (`supervisor/run_result.py` is its shape)."""
        return as_json(self.result())


def _rfc3339(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix)) + f".{int(unix % 1 * 1e6):06d}Z"


def write_results(run_dir: Path, result: RunResult) -> Path:
    path = run_dir / "results.json"
    write_atomically(path, orjson.dumps(as_json(result), option=orjson.OPT_INDENT_2) + b"\n")
    return path
