"""`[gcp]` config and preflight refusals (exit 2, the field named), and what a dry-run may say."""

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from supervisor.config import ConfigError, parse
from tests.helpers.supervisor_proc import REPO_ROOT
from workers.gcp.inventory import hosts_of_type
from workers.gcp.ssh_target import DryRunRefused, parse_dry_run

GOOD = {"cluster": {"kind": "gcp"}, "gcp": {"project": "proj-1", "zones": ["us-central2-b"]}}


def test_the_gcp_section_is_read_with_its_defaults() -> None:
    gcp = parse(GOOD).gcp
    assert (gcp.project, gcp.zones, gcp.controller_port) == ("proj-1", ("us-central2-b",), 10000)
    assert gcp.with_prefix("team-a").controller_vm == "iris-controller-team-a"
    assert gcp.with_prefix("team-a").tpu_filter() == "labels.team-a-managed=true"


@pytest.mark.parametrize(
    ("gcp", "field"),
    [
        ({"zones": ["us central"]}, "gcp.zones"),
        ({"project": "-oProxyCommand=x"}, "gcp.project"),
        ({"controller_port": 70000}, "gcp.controller_port"),
        ({"call_timeout_s": float("inf")}, "gcp.call_timeout_s"),
        ({"label_prefix": "Bad_Prefix"}, "gcp.label_prefix"),
        ({"worker_container": "x;rm"}, "gcp.worker_container"),
        ({"zone": "a"}, "gcp.zone"),
        ({"start_command": ["iris", "--zone={zonee}"]}, "gcp.start_command"),
        ({"stop_command": "iris cluster stop"}, "gcp.stop_command"),
        ({"stop_command": ["x{prefix!r}"]}, "gcp.stop_command"),
    ],
)
def test_bad_gcp_values_name_their_field(gcp: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}"):
        parse({"gcp": gcp})


def _preflight(tmp_path: Path, toml: str) -> "subprocess.CompletedProcess[str]":
    config = tmp_path / "run.toml"
    config.write_text(toml)
    argv = [sys.executable, "-m", "supervisor", "run", "--config", str(config), "--log-dir", str(tmp_path / "runs"),
            "--run-id", f"gcp-pre-{uuid.uuid4().hex[:8]}"]  # fmt: skip
    return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[cluster]\nkind = "gcp"\n', "gcp.project: required"),
        ('[cluster]\nkind = "gcp"\n[gcp]\nproject = "p"\n', "gcp.zones: required"),
        ('[cluster]\nkind = "gcp"\n[gcp]\nproject = "p"\nzones = ["z"]\ngcloud = "no-such-gcloud"\n', "gcp.gcloud"),
    ],
)
def test_preflight_refuses_an_incomplete_gcp_config(tmp_path: Path, toml: str, message: str) -> None:
    done = _preflight(tmp_path, toml)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_dry_run_is_parsed_into_the_ssh_we_run() -> None:
    target = parse_dry_run(
        "/usr/bin/ssh -t -i /home/u/.ssh/google_compute_engine -o CheckHostIP=no -o HashKnownHosts=no "
        "-o HostKeyAlias=tpu.123-2 -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/home/u/.ssh/google_compute_known_hosts u@10.1.2.3\n"
    )
    assert (target.user, target.address, target.port) == ("u", "10.1.2.3", 22)
    assert target.identity_file == "/home/u/.ssh/google_compute_engine"
    assert target.known_hosts_file == "/home/u/.ssh/google_compute_known_hosts"
    assert target.strict_host_key_checking == "no"
    assert "HostKeyAlias=tpu.123-2" in target.options


@pytest.mark.parametrize(
    "line",
    [
        "/usr/bin/ssh -o ProxyCommand=nc u@h",
        "/usr/bin/ssh -o LocalCommand=id u@h",
        "/usr/bin/ssh -L 1:h:2 u@h",
        "/usr/bin/ssh u@-oProxyCommand=x",
        "/usr/bin/ssh -i ../key u@h",
        "sh -c id",
        "",
    ],
)
def test_a_dry_run_we_do_not_understand_is_refused(line: str) -> None:
    with pytest.raises((DryRunRefused, ValueError)):
        parse_dry_run(line)


@pytest.mark.parametrize(
    ("accelerator", "hosts"), [("v5litepod-16", 4), ("v5litepod-8", 1), ("v4-32", 4), ("v5p-8", 1), ("x", 1)]
)
def test_a_slice_without_endpoints_counts_hosts_from_its_type(accelerator: str, hosts: int) -> None:
    assert hosts_of_type(accelerator) == hosts
