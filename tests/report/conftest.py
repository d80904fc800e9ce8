"""One real run with a failing test, shared by the report tests (a run costs seconds)."""

import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.supervisor_proc import REPO_ROOT

RUN_EXIT_S = 90.0
CONFIG = """
[run]
tests = ["simple"]

[[tests]]
name = "broken"
argv = ["sh", "-c", "echo '<script>alert(1)</script> \\u001b[31m'; exit 3"]
"""


@dataclass
class FinishedRun:
    run_dir: Path
    log_dir: Path
    returncode: int
    stdout: str
    stderr: str


def run_config(tmp: Path, config_text: str) -> FinishedRun:
    """One real run on the local cluster with `config_text` as its config, finished."""
    config = tmp / "run.toml"
    config.write_text(config_text)
    run_id, log_dir = f"rep-{uuid.uuid4().hex[:8]}", tmp / "runs"
    argv = [sys.executable, "-m", "supervisor", "run", "--config", str(config), "--log-dir", str(log_dir)]
    argv += ["--run-id", run_id, "--prefix", f"smoke-{uuid.uuid4().hex[:8]}", "--log-format", "json"]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=RUN_EXIT_S, check=False)
    return FinishedRun(log_dir / run_id, log_dir, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="package")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    return run_config(tmp_path_factory.mktemp("report-run"), CONFIG)
