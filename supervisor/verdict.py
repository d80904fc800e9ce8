"""The verdict of a run: `results.json`, written once, atomically, at the very end."""

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from common.files import write_atomically
from common.outcome import ExitCode, FailureReason, Outcome, exit_code_for, outcome_for
from supervisor.version import VERSION

# docs/results.schema.json; bumped when a field is removed or changes meaning.
SCHEMA_VERSION = 1


@dataclass
class Verdict:
    run_id: str
    started_unix: float
    timeout_s: float
    reasons: list[FailureReason] = field(default_factory=list)
    children: list[dict[str, Any]] = field(default_factory=list)
    processes: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, reason: FailureReason) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    @property
    def outcome(self) -> Outcome:
        return outcome_for(self.reasons)

    @property
    def exit_code(self) -> ExitCode:
        return exit_code_for(self.outcome, self.reasons)

    def as_dict(self) -> dict[str, Any]:
        finished = time.time()
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "version": VERSION,
            "started_at": _rfc3339(self.started_unix),
            "finished_at": _rfc3339(finished),
            "duration_s": round(finished - self.started_unix, 3),
            "timeout_s": self.timeout_s,
            "outcome": self.outcome,
            "exit_code": int(self.exit_code),
            "failure_reasons": list(self.reasons),
            "children": self.children,
            "processes": self.processes,
            **self.extra,
        }


def _rfc3339(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(unix)) + f".{int(unix % 1 * 1e6):06d}Z"


def write_results(run_dir: Path, verdict: Verdict) -> Path:
    path = run_dir / "results.json"
    write_atomically(path, orjson.dumps(verdict.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    return path
