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

# A whole results.json (supervisor/run_result.py's RunResult), as a run writes it.
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
    "processes": {"spawned": 9, "reaped": 9, "orphans_reaped": 0, "killed_at_stop": 0, "leaked": 0,
                  "leaked_processes": [], "zombies": 0, "grpc_imported": False},
    "observe": False,
    "cluster": {"kind": "local", "address": "unix:/tmp/x/controller.sock", "mode": "embedded", "prefix": "smoke",
                "vm_prefix": "smoke", "state_dir": None, "kept": False, "pid": 0},
    "cloud_cleanup": None,
    "jobs_confirmed": {"terminated": 1, "confirmed": 1, "unconfirmed": []},
    "foreign_jobs": [],
    "tests": [
        {"name": "simple", "outcome": "passed", "error": "", "duration_s": 2.5},
        {
            "name": "broken",
            "outcome": "failed",
            "duration_s": 1.0,
            "error": "state failed | exit 1",
            "log_tail": [{"job_id": "/smoke/broken", "task": 0, "lines": ["boom", "last line"]}],
        },
    ],
    "streams": [{"name": "stream:vm-a", "vm": "vm-a", "host": 0, "role": "worker", "state": "exited", "starts": 1,
                 "no_data": False, "lines": 12, "reconnects": 1, "gaps": 0, "stale": False}],
    "observation": {"host_listings": 1, "most_failed_listings_in_a_row": 0, "hosts_over_limit": 0,
                    "hosts_rejected": {"count": 0, "sample": [], "reasons": {}, "fields": {}}},
    "autoscaler_actions": [
        {"timestamp": "2026-11-29T07:00:01Z", "action_type": "scale_up", "scale_group": "tpu", "slice_id": "s-0"}
    ],
    "api_mismatch": None,
    "controller_unauthenticated": None,
    "controller_timeout": None,
    "reply_too_large": None,
    "controller_outage": None,
    "diagnostics": {},
}  # fmt: skip


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
