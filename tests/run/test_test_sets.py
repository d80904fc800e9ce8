"""`[sets]`: a named set of tests selectable wherever `--tests` / `run.tests` select; the fleet checks
are selected by default, in an observe run too."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.config import ConfigError, RunConfig, parse
from workers.child_args import FLEET_CHECKS

SETS = """
[sets]
vitals = ["controller_vitals", "slices_complete"]
quick = ["simple", "mine"]

[[tests]]
name = "mine"
argv = ["true"]
"""


def _check_config(tmp_path: Path, config: str, *argv: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "run.toml").write_text(config)
    return subprocess.run(
        [sys.executable, "-m", "supervisor", "run", "--check-config", "--config", "run.toml", *argv],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_every_run_selects_the_fleet_checks_observe_runs_too() -> None:
    assert RunConfig().test_names()[: len(FLEET_CHECKS)] == list(FLEET_CHECKS)
    assert RunConfig(observe=True).test_names() == list(FLEET_CHECKS)


def test_a_set_in_run_tests_stands_for_its_members() -> None:
    config = parse({**_sets(), "run": {"tests": ["vitals", "simple"]}})
    assert config.tests == ("controller_vitals", "slices_complete", "simple")
    assert config.test_names() == ["controller_vitals", "slices_complete", "simple", "mine"]


def test_a_set_on_the_command_line_stands_for_its_members(tmp_path: Path) -> None:
    done = _check_config(tmp_path, SETS, "--tests", "vitals,quick")
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)
    assert resolved["run"]["tests"] == ["controller_vitals", "slices_complete", "simple", "mine"]
    assert resolved["sets"]["vitals"] == ["controller_vitals", "slices_complete"]


def test_an_observe_run_may_name_fleet_checks_only(tmp_path: Path) -> None:
    assert _check_config(tmp_path, SETS, "--observe", "--tests", "vitals").returncode == 0
    refused = _check_config(tmp_path, SETS, "--observe", "--tests", "quick")
    assert refused.returncode == 2 and "--tests: conflicts with --observe" in refused.stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tests", "vital"], "--tests: 'vital' is neither a standard test"),
        ([], None),
    ],
)
def test_an_unknown_name_exits_2_naming_the_field(tmp_path: Path, argv: list[str], message: str | None) -> None:
    done = _check_config(tmp_path, SETS, *argv)
    assert (done.returncode, message is None or message in done.stderr) == (2 if message else 0, True), done.stderr


@pytest.mark.parametrize(
    ("sets", "field"),
    [
        ({"vitals": ["controller_vitals", "nope"]}, "sets.vitals: 'nope' is neither a standard test"),
        ({"a": ["simple"], "b": ["a"]}, "sets.b: 'a' is a set; sets do not nest"),
        ({"simple": ["concurrent"]}, "sets.simple: a test has this name"),
        ({"vitals": []}, "sets: vitals: an empty set selects nothing"),
        ({"vitals": "controller_vitals"}, "sets: vitals: must be a list of strings"),
    ],
)
def test_a_bad_set_names_its_field(sets: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        parse({"sets": sets})


def test_an_unknown_set_member_exits_2_at_the_command_line(tmp_path: Path) -> None:
    done = _check_config(tmp_path, '[sets]\nvitals = ["controller_vitalz"]\n')
    assert done.returncode == 2 and "sets.vitals: 'controller_vitalz' is neither" in done.stderr, done.stderr


def _sets() -> dict[str, object]:
    import tomllib

    return tomllib.loads(SETS)


def test_the_results_schema_lets_an_observe_run_report_exactly_the_fleet_checks() -> None:
    schema = json.loads((Path(__file__).parents[2] / "docs" / "results.schema.json").read_text())
    observe_tests = schema["then"]["properties"]["tests"]["items"]["properties"]["name"]["enum"]
    assert observe_tests == list(FLEET_CHECKS)
