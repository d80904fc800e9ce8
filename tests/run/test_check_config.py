"""`--check-config` validates as a run would and prints what it would use; `--tests` and durations."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from common import inputs
from supervisor.config import ConfigError, parse

CONFIG = """
[run]
timeout_s = "10m"
job_timeout_s = "90s"

[[tests]]
name = "mine"
argv = ["true"]
"""


def _iris_smoke(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor", *argv], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(("text", "expected"), [("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600), (45, 45)])
def test_one_duration_syntax(text: str | int, expected: float) -> None:
    assert inputs.seconds(text) == expected


def test_config_durations_take_units() -> None:
    config = parse({"run": {"timeout_s": "1h", "stop_grace_s": "500ms"}, "streams": {"stale_after_s": "5m"}})
    assert (config.timeout_s, config.stop_grace_s, config.streams.stale_after_s) == (3600, 0.5, 300)
    with pytest.raises(ConfigError, match=r"run\.timeout_s: must be a duration like 90, 90s, 10m or 1h"):
        parse({"run": {"timeout_s": "1 fortnight"}})


def test_run_check_config_prints_the_resolved_config_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text(CONFIG)
    log_dir = tmp_path / f"runs-{uuid.uuid4().hex[:6]}"
    done = _iris_smoke(
        "run", "--check-config", "--config", "run.toml", "--log-dir", str(log_dir), "--stop-grace", "3s",
        "--tests", "simple,mine", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)
    run = resolved["run"]
    assert (run["timeout_s"], run["job_timeout_s"], run["stop_grace_s"]) == (600, 90, 3)
    assert run["tests"] == ["simple", "mine"] and [t["name"] for t in resolved["tests"]] == ["mine"]
    assert run["discovery_interval_s"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.toml"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tests", "simple,nope"], "--tests: 'nope' is neither a standard test"),
        (["--timeout", "10x"], "--timeout: must be a duration like 90, 90s, 10m or 1h"),
        (["--cluster", "iris"], "--cluster iris: attaches to a running Iris controller"),
    ],
)
def test_run_check_config_refuses_with_the_field(tmp_path: Path, argv: list[str], message: str) -> None:
    done = _iris_smoke("run", "--check-config", *argv, cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_canary_check_config_checks_the_runs_arguments_too(tmp_path: Path) -> None:
    state = tmp_path / "state"
    done = _iris_smoke("canary", "--check-config", "--state-dir", str(state), "--interval", "1h", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["canary"]["interval"] == 3600 and report["run"]["run"]["timeout_s"] == 600
    bad = _iris_smoke("canary", "--check-config", "--state-dir", str(state), "--", "--tests", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and "run_args: --tests: 'nope'" in bad.stderr
    assert not state.exists()


def test_run_check_config_checks_the_tunnels_program_and_shows_the_tunnel(tmp_path: Path) -> None:
    """`[iris] tunnel_command`: its program must be on PATH; the resolved config shows the template unfilled."""
    template = '["{}", "-N", "-L", "{{port}}:localhost:{{remote_port}}", "bastion"]'
    (tmp_path / "missing.toml").write_text(f"[iris]\ntunnel_command = {template.format('no-such-ssh')}\n")
    (tmp_path / "ok.toml").write_text(f"[iris]\ntunnel_command = {template.format('sh')}\ncontroller_port = 8443\n")
    missing = _iris_smoke("run", "--check-config", "--cluster", "iris", "--config", "missing.toml", cwd=tmp_path)
    assert missing.returncode == 2 and "iris.tunnel_command: 'no-such-ssh' is not on PATH" in missing.stderr
    done = _iris_smoke("run", "--check-config", "--cluster", "iris", "--config", "ok.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    iris = json.loads(done.stdout)["iris"]
    assert iris["tunnel_command"] == ["sh", "-N", "-L", "{port}:localhost:{remote_port}", "bastion"]
    assert iris["controller_port"] == 8443
    assert sorted(p.name for p in tmp_path.iterdir()) == ["missing.toml", "ok.toml"]
