"""Run directories written by hand: what `show` and `report` get from a copied or planted one."""

import copy
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from tests.helpers.supervisor_proc import REPO_ROOT

# A reader that slurps /dev/zero must end in MemoryError here, not take the shared machine's memory.
CLI_MEMORY_BYTES = 2 << 30
CLI_TIMEOUT_S = 30.0

VALID: dict[str, Any] = {
    "schema_version": 1,
    "run_id": "r1",
    "version": "0.0.0",
    "started_at": "2026-11-29T07:00:00.000000Z",
    "finished_at": "2026-11-29T07:00:30.000000Z",
    "duration_s": 30.0,
    "timeout_s": 1800,
    "outcome": "failed",
    "exit_code": 1,
    "failure_reasons": ["test_failed"],
    "children": [],
    "processes": {"spawned": 9, "reaped": 9, "orphans_reaped": 0, "leaked": 0, "zombies": 0},
    "cluster": {"kind": "local", "address": "unix:/tmp/x/controller.sock"},
    "jobs_confirmed": {"terminated": 1, "confirmed": 1, "unconfirmed": []},
    "tests": [
        {"name": "simple", "outcome": "passed", "duration_s": 2.5},
        {
            "name": "broken",
            "outcome": "failed",
            "duration_s": 1.0,
            "error": "state failed | exit 1",
            "log_tail": [{"task": 0, "lines": ["boom", "last line"]}],
        },
    ],
    "streams": [{"name": "stream:vm-a", "state": "exited", "lines": 12, "reconnects": 1, "gaps": 0, "stale": False}],
    "autoscaler_actions": [
        {"timestamp": "2026-11-29T07:00:01Z", "action_type": "scale_up", "scale_group": "tpu", "slice_id": "s-0"}
    ],
}


def valid_results() -> dict[str, Any]:
    return copy.deepcopy(VALID)


def write_run(run_dir: Path, results: dict[str, Any] | bytes) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    data = results if isinstance(results, bytes) else orjson.dumps(results)
    (run_dir / "results.json").write_bytes(data)
    return run_dir


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CLI_MEMORY_BYTES, CLI_MEMORY_BYTES))


def cli(*args: str, timeout_s: float = CLI_TIMEOUT_S) -> "subprocess.CompletedProcess[str]":
    """`python -m supervisor ARGS`, the real command line, with bounded memory and time."""
    argv = [sys.executable, "-m", "supervisor", *args]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
        stdin=subprocess.DEVNULL, preexec_fn=_limit_memory, env=env,
    )  # fmt: skip
