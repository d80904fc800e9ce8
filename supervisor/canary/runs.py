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

import orjson

from common import env
from common.files import write_atomically
from common.outcome import ExitCode, Outcome
from supervisor import results_file
from supervisor.canary.config import SUITE_PROBE, CanaryConfig, Probe
from supervisor.canary.sdnotify import PROTOCOL_VARIABLES
from supervisor.run_files import RunDirError, read_json
from supervisor.run_result import RunResult, TestEntry

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
class RunSummary:
    """The daemon's view of a finished run: what it measured and found (its exit code, its duration,
    processes left with its tag), and the run's own verdict, `results`: its results.json as the run
    wrote it, None when it was missing or not readable (`results_problem` says why)."""

    run_id: str
    outcome: Outcome
    exit_code: int
    duration_s: float
    finished_unix: float
    leaked: int = 0
    reasons: list[str] = field(default_factory=list)
    results: RunResult | None = None
    results_problem: str = ""

    @property
    def results_found(self) -> bool:
        return self.results is not None

    @property
    def tests(self) -> tuple[TestEntry, ...]:
        return self.results.tests if self.results else ()

    @property
    def vitals(self) -> dict[str, float]:
        """The controller's vitals the `controller_vitals` fleet check measured; {} when it did not run."""
        for test in self.tests:
            if test.name == "controller_vitals":
                found = {name: test.details.get(key) for key, name in VITALS.items()}
                numbers = {name: v for name, v in found.items() if not isinstance(v, bool)}
                return {name: float(v) for name, v in numbers.items() if isinstance(v, int | float)}
        return {}


# controller_vitals' details (results.json) the canary exports, under the names it exports them by.
VITALS = {
    "select_1_s": "select_1_seconds",
    "rss_bytes": "resident_memory_bytes",
    "threads": "threads",
    "fds": "open_fds",
}

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


def read_results(run_dir: Path) -> tuple[RunResult | None, str]:
    """The run's results.json read as every reader reads it (`results_file`: capped, no symlink, no FIFO,
    the RunResult the run wrote); None and why when there is none or it is not one. Never raises: a run's
    unreadable verdict is the run's failure, never the daemon's."""
    try:
        return results_file.read_results(run_dir), ""
    except RunDirError as exc:
        return None, str(exc)


def summarize(
    run_id: str, run_dir: Path, exit_code: int, measured_s: float, *, leaked: int, overran: bool
) -> RunSummary:
    """The daemon's view of a finished run: its results.json when readable, its exit code otherwise.

    Processes the daemon found still carrying the run's tag make the run an error, whatever
    it said about itself; so does a run the daemon had to kill for overrunning (timeout).
    """
    results, problem = read_results(run_dir)
    outcome = results.outcome if results else outcome_of_exit(exit_code)
    reasons = [str(r) for r in results.failure_reasons] if results else []
    if overran:
        outcome, reasons = Outcome.TIMEOUT, [*reasons, "killed_by_canary"]
    if leaked:
        outcome, reasons = Outcome.ERROR, [*reasons, "process_leak"]
    return RunSummary(
        run_id=run_id,
        outcome=outcome,
        exit_code=exit_code,
        duration_s=results.duration_s if results else measured_s,
        finished_unix=time.time(),
        leaked=leaked + (results.processes.leaked if results else 0),
        reasons=reasons,
        results=results,
        results_problem=problem,
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
        results, _ = read_results(runs_dir / name)
        try:
            started = datetime.fromisoformat(results.started_at).timestamp() if results else None
        except ValueError:
            started = None
        if results is None or started is None:
            continue
        reasons = tuple(str(r) for r in results.failure_reasons)
        return LastRun(name, results.outcome, reasons, started, results.duration_s, runs_dir / name)
    return None
