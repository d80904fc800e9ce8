"""Configuration: every bad value is refused with the field's name and what would do."""

import textwrap
import tomllib
from pathlib import Path

import pytest

from common.deadline import Deadline
from supervisor.arbiter import Supervisor
from supervisor.canary.config import resolve
from supervisor.config import ClusterKind, ConfigError, load, parse
from supervisor.preflight import plan
from supervisor.run_cli import build_parser
from supervisor.smoke import SmokeRun
from workers.hosts import Role, VmHost
from workers.messages import ClusterReady, HostEntry
from workers.transports import IrisLogTransport, SshTransport

GOOD = """
[run]
timeout_s = 600
prefix = "ci"
tests = ["simple", "coscheduled"]

[cluster]
kind = "ssh"

[ssh]
user = "smoke"
port = 2222
hosts = [{vm = "vm-a", address = "10.0.0.5"}]

[[tests]]
name = "fails-on-purpose"
argv = ["sh", "-c", "exit 1"]
expect = "failed"
"""


def test_a_full_config_parses_into_frozen_settings(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(GOOD)
    config = load(path)
    assert config.cluster is ClusterKind.SSH
    assert config.timeout_s == 600 and config.prefix == "ci"
    assert config.test_names() == ["simple", "coscheduled", "fails-on-purpose"]
    assert config.ssh.hosts[0].vm == "vm-a" and config.ssh.transport.port == 2222
    assert config.custom_tests[0].job.argv == ("sh", "-c", "exit 1")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"run": {"timeout_s": 0}}, "run.timeout_s"),
        ({"run": {"timeout_s": "soon"}}, "run.timeout_s"),
        ({"run": {"tests": ["simple", "bogus"]}}, "run.tests"),
        ({"run": {"prefix": "Has Spaces"}}, "run.prefix"),
        ({"run": {"timeuot_s": 3}}, "run.timeuot_s"),
        ({"cluster": {"kind": "k8s"}}, "cluster.kind"),
        ({"streams": {"max_line_bytes": 10}}, "streams.max_line_bytes"),
        ({"streams": {"remote_command": "docker logs"}}, "streams.remote_command"),
        ({"ssh": {"hosts": [{"vm": "vm;touch pwned", "address": "x"}]}}, "ssh.hosts[0].vm"),
        ({"tests": [{"name": "t", "argv": []}]}, "tests[0].argv"),
        ({"tests": [{"name": "t", "argv": ["true"], "replicas": 0}]}, "tests[0].replicas"),
        ({"tests": [{"name": "simple", "argv": ["true"]}]}, "tests"),
        ({"iris": {"max_reply_bytes": 1000}}, "iris.max_reply_bytes"),
        ({"iris": {"max_reply_bytes": "32M"}}, "iris.max_reply_bytes"),
        ({"iris": {"max_log_page_bytes": 2**40}}, "iris.max_log_page_bytes"),
        ({"suite": {"priority_band": "urgent"}}, "suite.priority_band"),
        ({"suite": {"priority_band": "system"}}, "suite.priority_band"),
    ],
)
def test_bad_values_name_their_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(data)
    assert str(raised.value).startswith(f"{field}:")


def test_unreadable_and_malformed_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config: cannot read"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)


def test_preflight_refuses_an_ssh_cluster_without_a_controller(tmp_path: Path) -> None:
    from supervisor.cli import main

    assert main(["run", "--cluster", "ssh", "--log-dir", str(tmp_path)]) == 2
    assert main(["run", "--cluster", "gcp", "--log-dir", str(tmp_path)]) == 2
    assert main(["run", "--keep", "--controller", "127.0.0.1:1", "--log-dir", str(tmp_path)]) == 2
    assert list(tmp_path.iterdir()) == [], "nothing is created before preflight passes"


def test_every_subcommand_is_listed_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    from supervisor.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("run", "canary", "local-cluster"))


def _readme_toml_blocks() -> list[str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return [block.split("```", 1)[0] for block in readme.split("```toml\n")[1:]]


def test_every_toml_block_of_the_readme_is_a_valid_run_config(tmp_path: Path) -> None:
    """The quick start's remote.toml, the Configuration example and the rest: each parses as it stands,
    a canary's (`[[probes]]`) through the canary's own reader, every other one as a run's config."""
    blocks = _readme_toml_blocks()
    assert len(blocks) >= 2
    canary = [b for b in blocks if "[[probes]]" in b]
    for block in canary:
        (tmp_path / "canary.toml").write_text(textwrap.dedent(block))
        assert resolve({}, tmp_path / "canary.toml", {"STATE_DIRECTORY": str(tmp_path / "state")}).probes
    for block in blocks:
        if block not in canary:
            parse(tomllib.loads(block))


def test_the_readme_example_config_is_valid() -> None:
    [example] = [b for b in _readme_toml_blocks() if "my-check" in b]
    config = parse(tomllib.loads(example))
    assert config.test_names() == ["simple", "concurrent", "coscheduled", "my-check"]
    assert config.ssh.hosts[0].address == "10.0.0.5"


def test_the_ssh_section_builds_the_streams_transport_with_one_set_of_defaults() -> None:
    """`[ssh]` is read into the transport the stream children use: no second copy of its defaults."""
    default = parse({"ssh": {"user": "smoke"}}).ssh.transport
    assert default == SshTransport(user="smoke")  # every default is the transport's own
    assert "2>&1" in default.remote_template  # the follow command keeps the container's stderr
    template = "docker logs -f {since} {container} 2>&1"
    config = parse({"ssh": {"user": "smoke", "port": 2222, "identity_file": "/k", "connect_timeout_s": 2.4},
                    "streams": {"remote_command": template}})  # fmt: skip
    assert config.ssh.transport == SshTransport(
        user="smoke", port=2222, identity_file="/k", connect_timeout_s=2, remote_template=template
    )


def test_the_reply_caps_reach_every_child_that_reads_a_reply(tmp_path: Path) -> None:
    """`[iris] max_reply_bytes` and `max_log_page_bytes`: in the controller target every child
    gets, and in the log streams' transport (the follower's argv when not its own default)."""
    path = tmp_path / "run.toml"
    path.write_text("[iris]\nmax_reply_bytes = 1048576\nmax_log_page_bytes = 65536\n")
    argv = ["--log-dir", str(tmp_path), "--cluster", "iris", "--controller", "http://h:1", "--config", str(path)]
    p = plan(build_parser().parse_args(argv))
    target = p.target()
    assert (target.max_reply_bytes, target.max_log_page_bytes) == (1048576, 65536)
    ready = ClusterReady("http://h:1", "attach", cluster_pid=0, state_dir="", prefix="")
    run = SmokeRun(p, Supervisor(p.run_id, p.run_dir, Deadline.after(60)), cluster=ready)
    transport = run._transport(HostEntry("c", 0, Role.CONTROLLER, "c", "", "iris-controller"))
    assert isinstance(transport, IrisLogTransport) and transport.max_page_bytes == 65536
    assert "--max-page-bytes=65536" in transport.argv(VmHost("c", 0, Role.CONTROLLER, "c"), "", None, 5)


@pytest.mark.parametrize("prefix", ["$CREDENTIALS_DIRECTORY/", "${CREDENTIALS_DIRECTORY}/"])
def test_a_token_file_in_the_units_credentials_directory_is_expanded_once(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    """systemd hands a unit's credentials (LoadCredential=) in $CREDENTIALS_DIRECTORY: a leading
    `$CREDENTIALS_DIRECTORY/` in iris.token_file (or ssh.identity_file) is that directory."""
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/iris-smoke-canary@prod.service")
    config = parse({"iris": {"token_file": f"{prefix}iris-token"}, "ssh": {"identity_file": f"{prefix}ssh-key"}})
    assert config.iris.token_file == "/run/credentials/iris-smoke-canary@prod.service/iris-token"
    assert config.ssh.transport.identity_file == "/run/credentials/iris-smoke-canary@prod.service/ssh-key"
    # Only a leading one, and nothing else is expanded: any other `$` stays as written.
    assert parse({"iris": {"token_file": "/etc/$HOME/t"}}).iris.token_file == "/etc/$HOME/t"


def test_a_credentials_path_without_credentials_directory_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match=r"^iris\.token_file: .*CREDENTIALS_DIRECTORY is not set"):
        parse({"iris": {"token_file": "$CREDENTIALS_DIRECTORY/iris-token"}})
