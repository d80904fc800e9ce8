"""One settings registry: every run and canary setting declared once, the flags, the readers,
`--check-config` and the README's table derived from it."""

import dataclasses
import json
import subprocess
import sys

import pytest

from supervisor.canary.cli import build_parser as build_canary_parser
from supervisor.canary.config import CANARY_SETTINGS, CanaryConfig, load_file
from supervisor.config import RUN_SETTINGS, SECTIONS, RunConfig, parse, resolved
from supervisor.run_cli import build_parser as build_run_parser
from supervisor.settings import Setting, lookup
from tests.helpers.supervisor_proc import REPO_ROOT

# Run flags that are not settings: which file, which run, what to print.
PER_INVOCATION = {"--config", "--run-id", "--check-config", "--log-level", "--log-format", "--help", "-h"}
# Read by their own readers (arrays of tables): [[tests]] and [ssh] hosts.
TABLE_ARRAYS = {"custom_tests", "ssh.hosts"}
# Not a file key: derived from [streams] remote_command.
DERIVED = {"ssh.transport.remote_template"}


def _leaves(config: object, prefix: str = "") -> set[str]:
    """The dotted names of a config dataclass's plain fields, nested dataclasses opened."""
    names: set[str] = set()
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            names |= _leaves(value, f"{prefix}{f.name}.")
        else:
            names.add(f"{prefix}{f.name}")
    return names


def _ssh_transport_internals() -> set[str]:
    """SshTransport fields no config key sets (its binary, keep-alives): the transport's own."""
    keys = {s.attr for s in RUN_SETTINGS if s.attr.startswith("ssh.transport.")}
    return {n for n in _leaves(RunConfig()) if n.startswith("ssh.transport.")} - keys - DERIVED


def test_every_config_field_is_declared_once() -> None:
    """A field of the run's or the canary's config is a setting, once; a setting lands on a field."""
    for registry, config in ((RUN_SETTINGS, RunConfig()), (CANARY_SETTINGS, CanaryConfig())):
        attrs = [s.attr for s in registry]
        assert len(attrs) == len(set(attrs)), "an attribute set by two settings"
        names = [s.name for s in registry]
        assert len(names) == len(set(names)), "a key declared twice"
        for s in registry:
            lookup(config, s.attr)  # raises if the attribute does not exist
    undeclared = _leaves(RunConfig()) - {s.attr for s in RUN_SETTINGS} - TABLE_ARRAYS - DERIVED
    assert undeclared - _ssh_transport_internals() == set()
    assert {f.name for f in dataclasses.fields(CanaryConfig)} == {s.attr for s in CANARY_SETTINGS}
    assert {s.section for s in RUN_SETTINGS} == {*SECTIONS, ""}  # "": top-level tables ([sets])


def _flags(parser: object) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("parser", "registry", "others"),
    [
        (build_run_parser(), RUN_SETTINGS, PER_INVOCATION | {"--demo-streams", "--demo-duration", "--demo-interval"}),
        (build_canary_parser(), CANARY_SETTINGS, {"--config", "--check-config", "--log-level", "--help", "-h"}),
    ],
    ids=["run", "canary"],
)
def test_the_flags_are_the_registrys(parser: object, registry: tuple[Setting, ...], others: set[str]) -> None:
    assert _flags(parser) - others == {s.flag for s in registry if s.flag}


def test_a_flag_is_checked_as_the_file_is() -> None:
    """The same check behind `--timeout` and `run.timeout_s`, `--keep-runs` and `keep_runs`."""
    args = build_run_parser().parse_args(["--timeout", "10m", "--tests", "simple,concurrent", "--keep"])
    assert (args.timeout, args.tests, args.keep) == (600.0, ("simple", "concurrent"), True)
    assert parse({"run": {"timeout_s": "10m"}}).timeout_s == 600.0
    assert build_canary_parser().parse_args(["--max-bytes", "2G"]).max_bytes == 2 << 30


def test_the_resolved_config_reads_back_as_a_config_file() -> None:
    """`--check-config` prints the file's own keys: what it prints is a config that resolves the same."""
    data = {
        "run": {"timeout_s": "10m", "tests": ["simple", "mine"], "prefix": "ci"},
        "cluster": {"kind": "ssh", "controller": "10.0.0.2:1"},
        "streams": {"max_streams": 8},
        "ssh": {"user": "smoke", "port": 2222, "hosts": [{"vm": "vm-a", "address": "10.0.0.5"}]},
        "iris": {"proxy_token_command": ["print-token"], "max_reply_bytes": 1 << 20},
        "verdict": {"silent_streams": "warn"},
        "suite": {"priority_band": "batch"},
        "gcp": {"zones": ["us-central2-b"]},
        "tests": [{"name": "mine", "argv": ["true"], "constraints": [{"key": "region", "value": "x"}]}],
    }
    once = json.loads(json.dumps(resolved(parse(data))))  # as --check-config prints it
    assert once["run"]["timeout_s"] == 600.0 and once["ssh"]["port"] == 2222 and once["tests"][0]["name"] == "mine"
    again = {section: {k: v for k, v in values.items() if v is not None} if isinstance(values, dict) else values
             for section, values in once.items()}  # fmt: skip
    assert json.loads(json.dumps(resolved(parse(again)))) == once


def test_the_canarys_resolved_config_uses_the_files_keys(tmp_path: object) -> None:
    from supervisor.canary.cli import describe

    described = describe(CanaryConfig(interval_s=60.0))
    assert described["interval"] == 60.0 and described["state_dir"] == "iris-smoke-canary"
    path = tmp_path / "canary.toml"  # type: ignore[operator]
    path.write_text("\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in described.items() if v is not None))
    assert load_file(path)["interval_s"] == 60.0


def test_the_readmes_settings_table_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "settings_table.py"), "--check"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
