"""The systemd units are code: verified, hardened, and their time limits nest with the daemon's budgets."""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

from common import inputs
from supervisor.canary import budgets, config
from tests.helpers.supervisor_proc import REPO_ROOT

UNITS = REPO_ROOT / "systemd"
# systemd/examples/<example>/<unit>.service.d/: drop-ins, each named for the unit it extends.
EXAMPLE_DROP_INS = sorted((UNITS / "examples").glob("*/*.service.d"))


def _directives(path: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, in order, per key (systemd allows repeats)."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def _environment(unit: dict[str, list[str]]) -> dict[str, str]:
    return dict(item.split("=", 1) for line in unit.get("Environment", []) for item in shlex.split(line))


def test_check_systemd_script_passes() -> None:
    """verify and security (exposure <= 1.0) on every unit; CI runs the same script before the tests."""
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: install Debian's systemd package"
    done = subprocess.run(
        ["bash", "scripts/check_systemd.sh"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("exposure 1.0 <= 1.0") == 3 + len(EXAMPLE_DROP_INS)
    # Each example drop-in is applied to the unit it names and checked with it.
    for drop_in in EXAMPLE_DROP_INS:
        name = drop_in.relative_to(REPO_ROOT)
        assert f"verify {name}: ok" in done.stdout and f"security {name}: exposure 1.0" in done.stdout, done.stdout


def test_canary_unit_budgets_nest_with_the_example_config() -> None:
    unit = _directives(UNITS / "iris-smoke-canary.service")
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"] and unit["KillMode"] == ["mixed"]
    assert unit["WatchdogSec"] and unit["Restart"] == ["on-failure"]
    stop_s = inputs.seconds(unit["TimeoutStopSec"][0])
    # The daemon learns TimeoutStopSec from the environment: the two must agree.
    assert inputs.seconds(_environment(unit)[config.TIMEOUT_STOP_ENV]) == stop_s
    values = config.load_file(UNITS / "canary.example.toml")
    example = config.CanaryConfig(**values, unit_timeout_stop_s=stop_s)
    check = budgets.check(example)
    assert check.errors == [] and check.warnings == []
    assert "--state-dir ${STATE_DIRECTORY}" in unit["ExecStart"][0]


def test_oneshot_unit_start_timeout_covers_the_run_and_its_cleanup() -> None:
    unit = _directives(UNITS / "iris-smoke.service")
    assert unit["Type"] == ["oneshot"]
    match = re.search(r"--timeout (\d+)", unit["ExecStart"][0])
    assert match, "the one-shot run must be given an explicit --timeout"
    cleanup_s = 60.0  # child stop grace 2 s, KILL wait, audit: far less, with margin
    assert inputs.seconds(unit["TimeoutStartSec"][0]) > int(match[1]) + cleanup_s


def test_both_services_share_the_hardening() -> None:
    keys = ("ProtectSystem", "NoNewPrivileges", "CapabilityBoundingSet", "SystemCallFilter", "MemoryDenyWriteExecute")
    canary, oneshot = _directives(UNITS / "iris-smoke-canary.service"), _directives(UNITS / "iris-smoke.service")
    assert {k: canary[k] for k in keys} == {k: oneshot[k] for k in keys}
    assert canary["ProtectSystem"] == ["strict"] and canary["CapabilityBoundingSet"] == [""]
