"""Start a real supervisor in its own session, read its events, stop it for sure."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from common.processes import signal_group
from tests.helpers.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 15.0


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file another process is appending to: a last line
    without its newline is still being written (read mid-write, it failed to parse)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line]


class EventsProc:
    """A process a test started that writes its events to a JSON-lines file: find them, wait for
    them (its exit before the event is a failure quoting the end of its output), signal it."""

    name: ClassVar[str]
    popen: "subprocess.Popen[bytes]"
    output: Path

    def events(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def find(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["event"] == event and all(e.get(k) == v for k, v in fields.items())]

    def wait_event(
        self, event: str, timeout_s: float = START_TIMEOUT_S, count: int = 1, **fields: Any
    ) -> list[dict[str, Any]]:
        def seen() -> list[dict[str, Any]]:
            found = self.find(event, **fields)
            if len(found) >= count:
                return found
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.popen.returncode}) before {event}:\n{self.output.read_text()[-3000:]}"
                )
            return []

        return wait_for(seen, timeout_s, f"{count} x {event} {fields}")

    def wait_exit(self, timeout_s: float) -> int:
        return self.popen.wait(timeout=timeout_s)

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.popen.pid, sig)


@dataclass
class SupervisorProc(EventsProc):
    name = "supervisor"
    popen: "subprocess.Popen[bytes]"
    run_id: str
    run_dir: Path
    output: Path

    def events(self) -> list[dict[str, Any]]:
        return json_lines(self.run_dir / "events.jsonl")

    def child_pids(self) -> list[int]:
        return [e["child_pid"] for e in self.find("child_started")]

    def stream_files(self) -> list[Path]:
        """The file of every stream child started so far (the controller's, then one per worker VM)."""
        names = {str(e["child"]) for e in self.find("child_started") if str(e["child"]).startswith("stream:")}
        logs = self.run_dir / "logs"
        return [logs / "controller.jsonl" if "@" in n else logs / "vms" / f"{n.split(':', 1)[1]}.jsonl" for n in names]

    def results(self) -> dict[str, Any]:
        return dict(json.loads((self.run_dir / "results.json").read_text()))


def _kill_session(popen: "subprocess.Popen[bytes]") -> None:
    if popen.poll() is None:
        signal_group(popen.pid, signal.SIGKILL)
    popen.wait(timeout=10)


@contextmanager
def started(argv: list[str], tmp_path: Path, run_id: str, log_dir: Path | None = None) -> Iterator[SupervisorProc]:
    """Run `python <argv>` from the repo root in a new session; whatever happens, it is gone after."""
    log_dir = log_dir or tmp_path / "runs"
    output = tmp_path / f"{run_id}.out"
    with open(output, "wb") as out:
        popen = subprocess.Popen(
            [sys.executable, *argv],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=os.environ | {"IRIS_SMOKE_LOG_FORMAT": "json"},
        )
    try:
        yield SupervisorProc(popen, run_id, log_dir / run_id, output)
    finally:
        _kill_session(popen)


def run_argv(run_id: str, log_dir: Path, *extra: str) -> list[str]:
    return ["-m", "supervisor", "run", "--run-id", run_id, "--log-dir", str(log_dir), *extra]
