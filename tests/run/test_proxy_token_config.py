"""`[iris] proxy_token_file | proxy_token_command`, `proxy_token_ttl_s`: checked at preflight (exit 2
naming the field), then handed to every child in its ControllerTarget."""

import sys
from pathlib import Path

import pytest

from common.controller_target import ProxyToken
from supervisor.cli import main
from supervisor.preflight import plan
from supervisor.run_cli import build_parser

ATTACH = ("--cluster", "iris", "--controller", "http://127.0.0.1:9")


def _config(tmp_path: Path, iris: str) -> str:
    config = tmp_path / "run.toml"
    config.write_text(f"[iris]\n{iris}\n")
    return str(config)


@pytest.mark.parametrize(
    ("iris", "says"),
    [
        ('proxy_token_file = "{tmp}/token"\nproxy_token_command = ["gcloud"]', "iris.proxy_token_command: give"),
        ('proxy_token_command = ["/nonexistent/gcloud", "auth"]', "iris.proxy_token_command: '/nonexistent/gcloud'"),
        ('proxy_token_command = [""]', "iris.proxy_token_command: the first word"),
        ('proxy_token_command = "gcloud auth"', "iris.proxy_token_command: must be a list of strings"),
        ('proxy_token_file = "{tmp}/missing"', "iris.proxy_token_file: "),
        ('proxy_token_file = "{tmp}/token"\nproxy_token_ttl_s = 0', "iris.proxy_token_ttl_s: "),
    ],
)
def test_a_bad_proxy_token_setting_exits_2_naming_the_field_and_why(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, iris: str, says: str
) -> None:
    (tmp_path / "token").write_text("opaque-token\n")
    (tmp_path / "token").chmod(0o600)
    config = _config(tmp_path, iris.replace("{tmp}", str(tmp_path)))
    assert main(["run", "--log-dir", str(tmp_path / "runs"), *ATTACH, "--config", config]) == 2
    assert not (tmp_path / "runs").exists(), "a refused run must not create anything"
    err = capsys.readouterr().err
    assert says in err and "unknown key" not in err and "opaque-token" not in err, err


def test_the_command_reaches_every_child_in_its_target(tmp_path: Path) -> None:
    command = f'proxy_token_command = ["{sys.executable}", "-c", "print(1)"]\nproxy_token_ttl_s = "2m"'
    run = plan(build_parser().parse_args([*ATTACH, "--config", _config(tmp_path, command)]))
    assert run.target().proxy_token == ProxyToken(command=(sys.executable, "-c", "print(1)"), ttl_s=120.0)


def test_a_proxy_token_file_open_to_others_is_refused_as_a_token_file_is(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("opaque-token\n")
    (tmp_path / "token").chmod(0o644)
    config = _config(tmp_path, f'proxy_token_file = "{tmp_path}/token"')
    assert main(["run", "--log-dir", str(tmp_path / "runs"), *ATTACH, "--config", config]) == 2
    assert "iris.proxy_token_file: " in capsys.readouterr().err


def test_a_proxy_token_over_plain_http_to_another_host_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = _config(tmp_path, f'proxy_token_command = ["{sys.executable}"]')
    remote = ("--cluster", "iris", "--controller", "http://iris.example:80")
    assert main(["run", "--log-dir", str(tmp_path / "runs"), *remote, "--config", config]) == 2
    assert "plain http" in capsys.readouterr().err
