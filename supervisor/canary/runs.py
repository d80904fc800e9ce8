"""One canary run seen from the daemon: its id, its process, its environment, its verdict.

Each run is `iris-smoke run` in a process of its own (fork+exec, new session), so a
crash, a leak or a wedge in a run cannot take the daemon down: the daemon only starts
it, reaps it, audits its tag and reads its `results.json`.
"""

import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from common import env
from common.files import write_atomically
from common.outcome import ExitCode, Outcome
from supervisor.canary.config import SUITE_PROBE, CanaryConfig, Probe
from supervisor.canary.sdnotify import PROTOCOL_VARIABLES
from supervisor.run_files import RESULTS_MAX_BYTES, RunDirError, read_json

# `20260101T120000.123Z-1a2b3c`: sorts by start time (retention relies on it), accepted by
# `iris-smoke run --run-id`. Also matches the plain run's own ids (no milliseconds).
RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{6}(\.\d{3})?Z-[0-9a-f]{6}$")


def new_run_id(now_unix: float | None = None) -> str:
    now = time.time() if now_unix is None else now_unix
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int(now % 1 * 1000):03d}Z-{secrets.token_hex(3)}"


def run_environment(environ: Mapping[str, str], run_id: str) -> dict[str, str]:
    """The daemon's environment minus the systemd protocol and any tag of its own, plus a fresh tag.

    The tag is what the leak audit looks for: every process the run starts inherits it.
    """
    drop = {*PROTOCOL_VARIABLES, env.RUN_TAG}
    return {k: v for k, v in environ.items() if k not in drop} | {env.RUN_TAG: run_id}


def run_argv(command: Sequence[str], runs_dir: Path, run_id: str, timeout_s: float, extra: Sequence[str]) -> list[str]:
    # Extra arguments come last, so an operator's own --timeout there wins over ours
    # (the daemon still enforces its own run timeout + cleanup budget).
    return [*command, "--log-dir", str(runs_dir), "--run-id", run_id, "--timeout", f"{timeout_s:g}", *extra]


def probe_argv(config: CanaryConfig, probe: Probe, runs_dir: Path, run_id: str) -> list[str]:
    """A probe's run: its timeout, and its tests (`--tests`, a set or names) after the run_args."""
    tests = ("--tests", ",".join(probe.tests)) if probe.tests else ()
    extra = (*config.run_args, *tests)
    return run_argv(config.run_command, runs_dir, run_id, config.timeout_of(probe), extra)


def spawn(argv: Sequence[str], environ: Mapping[str, str], *, quiet: bool = False) -> int:
    """Start a run in a new session; return its pid. Raises OSError if it cannot be executed.

    posix_spawn, not subprocess.Popen: the daemon reaps with one `waitpid(-1)` loop (it is
    a child subreaper, so orphans of a crashed run come to it too), and a Popen object
    would wait on the same pid from its own `poll()`/`__del__` bookkeeping and steal the
    status. posix_spawn is fork+exec with nothing to reconcile. Every descriptor the
    daemon opens is close-on-exec (PEP 446), so the run inherits only stdin (/dev/null),
    stdout and stderr: its JSON lines go to the same journal as the daemon's (`quiet`: to
    /dev/null, for a helper whose exit code says all, such as the history page's renderer).
    """
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    if quiet:
        actions += [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)]
    return os.posix_spawnp(argv[0], list(argv), dict(environ), setsid=True, file_actions=actions)


@dataclass(frozen=True)
class TestResult:
    name: str
    passed: bool
    duration_s: float | None


@dataclass(frozen=True)
class StreamTotals:
    streams: int = 0
    lines: int = 0
    gaps: int = 0
    reconnects: int = 0
    stale: int = 0


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    outcome: Outcome
    exit_code: int
    duration_s: float
    finished_unix: float
    leaked: int = 0
    results_found: bool = False
    reasons: list[str] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    streams: StreamTotals | None = None
    vitals: dict[str, float] = field(default_factory=dict)


# controller_vitals' details (results.json) the canary exports, under the names it exports them by.
VITALS = {
    "select_1_s": "select_1_seconds",
    "rss_bytes": "resident_memory_bytes",
    "threads": "threads",
    "fds": "open_fds",
}


def _vitals(raw: Any) -> dict[str, float]:
    """The controller's vitals the `controller_vitals` fleet check measured; {} when it did not run."""
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and item.get("name") == "controller_vitals" and isinstance(item.get("details"), dict):
            details = item["details"]
            return {
                name: float(details[key])
                for key, name in VITALS.items()
                if isinstance(details.get(key), int | float) and not isinstance(details.get(key), bool)
            }
    return {}


_EXIT_OUTCOMES: dict[int, Outcome] = {
    ExitCode.PASSED: Outcome.PASSED,
    ExitCode.TEST_FAILED: Outcome.FAILED,
    ExitCode.TIMEOUT: Outcome.TIMEOUT,
    ExitCode.INTERRUPTED_SIGINT: Outcome.CANCELLED,
    ExitCode.INTERRUPTED_SIGTERM: Outcome.CANCELLED,
}


def outcome_of_exit(exit_code: int) -> Outcome:
    """The outcome when results.json is missing or unreadable: the exit code is the protocol.
    Anything else (usage error, infrastructure error, killed by a signal) is an error."""
    return _EXIT_OUTCOMES.get(exit_code, Outcome.ERROR)


def _count(value: Any) -> int:
    # The full run's stream stats are being written as this lands: accept a count, a flag
    # or a list of occurrences for each of them.
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, list):
        return len(value)
    return 0


def _tests(raw: Any) -> list[TestResult]:
    tests = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            duration = item.get("duration_s")
            tests.append(
                TestResult(
                    item["name"],
                    item.get("outcome") == Outcome.PASSED,
                    float(duration) if isinstance(duration, int | float) else None,
                )
            )
    return tests


def _streams(raw: Any) -> StreamTotals | None:
    if not isinstance(raw, list):
        return None
    items = [s for s in raw if isinstance(s, dict)]
    return StreamTotals(
        streams=len(items),
        lines=sum(_count(s.get("lines")) for s in items),
        gaps=sum(_count(s.get("gaps")) for s in items),
        reconnects=sum(_count(s.get("reconnects")) for s in items),
        stale=sum(1 for s in items if _count(s.get("stale"))),
    )


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """The run's results.json as a dict, read as every run file is (`run_files`: capped, no symlink,
    no FIFO); None when there is none or it is not a verdict."""
    try:
        top = read_json(run_dir / "results.json", RESULTS_MAX_BYTES)
    except RunDirError:
        return None
    return top.value if top is not None and isinstance(top.value, dict) else None


def summarize(
    run_id: str, run_dir: Path, exit_code: int, measured_s: float, *, leaked: int, overran: bool
) -> RunSummary:
    """The daemon's view of a finished run: its results.json when usable, its exit code otherwise.

    Processes the daemon found still carrying the run's tag make the run an error, whatever
    it said about itself; so does a run the daemon had to kill for overrunning (timeout).
    """
    results = read_results(run_dir) or {}
    outcome = outcome_of_exit(exit_code)
    if results.get("outcome") in set(Outcome):
        outcome = Outcome(results["outcome"])
    reasons = [r for r in results.get("failure_reasons", []) if isinstance(r, str)]
    processes = results.get("processes")
    run_leaked = _count(processes.get("leaked")) if isinstance(processes, dict) else 0
    if overran:
        outcome, reasons = Outcome.TIMEOUT, [*reasons, "killed_by_canary"]
    if leaked:
        outcome, reasons = Outcome.ERROR, [*reasons, "process_leak"]
    duration = results.get("duration_s")
    return RunSummary(
        run_id=run_id,
        outcome=outcome,
        exit_code=exit_code,
        duration_s=float(duration) if isinstance(duration, int | float) else measured_s,
        finished_unix=time.time(),
        leaked=leaked + run_leaked,
        results_found=bool(results),
        reasons=reasons,
        tests=_tests(results.get("tests")),
        streams=_streams(results.get("streams")),
        vitals=_vitals(results.get("tests")),
    )


@dataclass(frozen=True)
class LastRun:
    """A probe's newest finished run, as `/healthz` shows it."""

    run_id: str
    outcome: Outcome
    reasons: tuple[str, ...]
    started_unix: float
    duration_s: float
    run_dir: Path


# Written by the daemon into a run's directory after the run: which probe ran it (`history` groups by it).
PROBE_FILE = "canary.json"


def record_probe(run_dir: Path, probe: str) -> None:
    """Beside the run's own files, never in them: the run wrote its verdict and is gone."""
    if run_dir.is_dir() and not run_dir.is_symlink():
        write_atomically(run_dir / PROBE_FILE, orjson.dumps({"probe": probe}) + b"\n")


def probe_of(run_dir: Path) -> str | None:
    """The probe the canary recorded for this run; None when it recorded none (a plain run)."""
    try:
        top = read_json(run_dir / PROBE_FILE, 4096)
    except RunDirError:
        return None
    probe = top.value.get("probe") if top is not None and isinstance(top.value, dict) else None
    return probe if isinstance(probe, str) and probe else None


def last_on_disk(runs_dir: Path, probe: str = SUITE_PROBE) -> LastRun | None:
    """The probe's newest run directory with a readable verdict (a restarted daemon's last run until
    its next); a run without a recorded probe is the suite's."""
    try:
        names = sorted((p.name for p in runs_dir.iterdir() if RUN_ID_PATTERN.match(p.name)), reverse=True)
    except OSError:
        return None
    for name in names:
        if (probe_of(runs_dir / name) or SUITE_PROBE) != probe:
            continue
        results = read_results(runs_dir / name) or {}
        try:
            outcome = Outcome(results["outcome"])
            started = datetime.fromisoformat(results["started_at"]).timestamp()
            duration = float(results["duration_s"])
        except (KeyError, TypeError, ValueError):
            continue
        reasons = tuple(r for r in results.get("failure_reasons", []) if isinstance(r, str))
        return LastRun(name, outcome, reasons, started, duration, runs_dir / name)
    return None
