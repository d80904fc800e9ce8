"""Bad input, through the real command line: exit 2, one line naming the field, nothing created."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.config import parse

CLI_TIMEOUT_S = 60
NOT_UTF8 = b"\xff\xfe"

_TEMPLATE = '[streams]\nremote_command = "docker logs '
_SSH = '[cluster]\nkind = "ssh"\ncontroller = "127.0.0.1:1"\n'
_IRIS = ("--cluster", "iris")
_TUNNEL = '[iris]\ntunnel_command = ["ssh", "-N", "-L", {}, "bastion"]\n'

RUN_CASES: list[tuple[str, tuple[str | bytes, ...], str, str]] = [
    # (id, flags, TOML config ("" for none), the field the one line must name)
    ("timeout-nan", ("--timeout", "nan"), "", "--timeout"),
    ("timeout-inf", ("--timeout", "inf"), "", "--timeout"),
    ("timeout-1e12", ("--timeout", "1e12"), "", "--timeout"),
    ("job-timeout-30-days", ("--job-timeout", str(30 * 86400)), "", "--job-timeout"),
    ("toml-inf", (), "[run]\ntimeout_s = inf\n", "run.timeout_s"),
    ("toml-nan", (), "[run]\nboot_timeout_s = nan\n", "run.boot_timeout_s"),
    ("toml-1e12", (), "[run]\ntimeout_s = 1e12\n", "run.timeout_s"),
    ("huge-line-cap", (), "[streams]\nmax_line_bytes = 1099511627776\n", "streams.max_line_bytes"),
    ("huge-replicas", (), '[[tests]]\nname = "t"\nargv = ["true"]\nreplicas = 1000000000\n', "tests[0].replicas"),
    ("ssh-user-option", (), _SSH + '[ssh]\nuser = "-oProxyCommand=touch /tmp/pwned"\n', "ssh.user"),
    ("ssh-user-space", (), _SSH + '[ssh]\nuser = "a b"\n', "ssh.user"),
    (
        "ssh-address-option",
        (),
        _SSH + '[ssh]\nhosts = [{ vm = "vm-a", address = "-oProxyCommand=touch /tmp/pwned" }]\n',
        "ssh.hosts[0].address",
    ),
    ("ssh-address-control", (), _SSH + '[ssh]\nhosts = [{ vm = "a", address = "h\\u001b" }]\n', "ssh.hosts[0].address"),
    (
        "ssh-duplicate-vm",
        (),
        _SSH + '[ssh]\nhosts = [{ vm = "vm-a", address = "10.0.0.1" }, { vm = "vm-a", address = "10.0.0.2" }]\n',
        "ssh.hosts[1].vm",
    ),
    ("ssh-port", (), _SSH + "[ssh]\nport = 70000\n", "ssh.port"),
    # ssh would take `host:port` whole as a host name: refused, the fix named.
    (
        "ssh-address-port",
        (),
        _SSH + '[ssh]\nhosts = [{ vm = "a", address = "10.0.0.5:2222" }]\n',
        "ssh.hosts[0].address: '10.0.0.5:2222' has a port; give the host alone ('10.0.0.5') and set [ssh] port = 2222",
    ),
    (
        "ssh-address-v6-port",
        (),
        _SSH + '[ssh]\nhosts = [{ vm = "a", address = "[fd00::5]:2222" }]\n',
        "set [ssh] port = 2222",
    ),
    (
        "ssh-address-colons",
        (),
        _SSH + '[ssh]\nhosts = [{ vm = "a", address = "10.0.0.5:22:33" }]\n',
        "ssh.hosts[0].address: must be a hostname or IP address",
    ),
    ("template-unknown-field", (), _TEMPLATE + '{container} {x}"\n', "streams.remote_command"),
    ("template-positional", (), _TEMPLATE + '{} {container}"\n', "streams.remote_command"),
    ("template-unclosed", (), _TEMPLATE + '{container"\n', "streams.remote_command"),
    ("template-escaped-only", (), _TEMPLATE + '{{container}}"\n', "streams.remote_command"),
    ("template-format-spec", (), _TEMPLATE + '{container:>9}"\n', "streams.remote_command"),
    ("controller-option", ("--controller=-oProxyCommand=x",), "", "--controller"),
    ("controller-no-port", ("--controller", "127.0.0.1"), "", "--controller"),
    ("controller-bad-port", ("--controller", "127.0.0.1:70000"), "", "--controller"),
    ("controller-url-for-grpc", ("--controller", "http://127.0.0.1:1"), "", "--controller"),
    ("controller-unix-relative", ("--controller", "unix:sock"), "", "--controller"),
    ("controller-spaces", ("--controller", "host name:1"), "", "--controller"),
    ("toml-controller", (), '[cluster]\ncontroller = "a;b:1"\n', "--controller"),
    ("prefix-newline", ("--prefix", "ci\n"), "", "--prefix"),
    ("run-id-newline", ("--run-id", "r1\n"), "", "--run-id"),
    ("toml-prefix-newline", (), '[run]\nprefix = "ci\\n"\n', "run.prefix"),
    ("test-name-newline", (), '[[tests]]\nname = "t\\n"\nargv = ["true"]\n', "tests[0].name"),
    ("log-dir-not-utf8", ("--log-dir", b"runs-" + NOT_UTF8), "", "--log-dir"),
    ("config-not-utf8", (), "\udcff", "--config"),
    ("keep-iris-local", ("--cluster", "iris-local", "--keep"), "", "--keep"),
    ("toml-keep-iris-local", (), '[cluster]\nkind = "iris-local"\nkeep = true\n', "--keep"),
    (
        "tunnel-unknown-placeholder",
        _IRIS,
        _TUNNEL.format('"{port}:localhost:{remote}"'),
        "iris.tunnel_command: {remote} in '{port}:localhost:{remote}'; only {port}, {remote_port} are filled in",
    ),
    ("tunnel-format-spec", _IRIS, _TUNNEL.format('"{port:>6}:localhost:10000"'), "iris.tunnel_command: {port} in"),
    (
        "tunnel-shell-line",
        _IRIS,
        '[iris]\ntunnel_command = "ssh -N -L {port}:localhost:10000 bastion"\n',
        "iris.tunnel_command: must be a list of strings (an argv, never a shell line)",
    ),
    (
        "tunnel-no-port",
        _IRIS,
        _TUNNEL.format('"8080:localhost:{remote_port}"'),
        "iris.tunnel_command: must contain {port}",
    ),
    (
        "tunnel-and-controller",
        (*_IRIS, "--controller", "http://127.0.0.1:10000"),
        _TUNNEL.format('"{port}:h:1"'),
        "iris.tunnel_command: the run reaches Iris through its tunnel; drop --controller",
    ),
    (
        "tunnel-other-cluster",
        ("--cluster", "local"),
        _TUNNEL.format('"{port}:h:1"'),
        "iris.tunnel_command: only for --cluster iris",
    ),
    (
        "tunnel-not-on-path",
        _IRIS,
        '[iris]\ntunnel_command = ["no-such-tunnel-tool", "{port}"]\n',
        "iris.tunnel_command: 'no-such-tunnel-tool' is not on PATH",
    ),
    (
        "controller-port",
        _IRIS,
        _TUNNEL.format('"{port}:h:1"') + "controller_port = 70000\n",
        "iris.controller_port: must be an integer from 1 to 65535",
    ),
]


def _cli(tmp_path: Path, *argv: str | bytes) -> "subprocess.CompletedProcess[bytes]":
    env = dict(os.environ, IRIS_SMOKE_LOCK_DIR=str(tmp_path / "locks"))
    return subprocess.run(
        [sys.executable, "-m", "supervisor", *argv],
        cwd=tmp_path, env=env, capture_output=True, timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip


def _assert_refused(done: "subprocess.CompletedProcess[bytes]", field: str) -> None:
    err = done.stderr.decode("utf-8", "replace").strip()
    assert done.returncode == 2, f"exit {done.returncode}: {err[-2000:]}"
    assert len(err.splitlines()) == 1, f"one line, got:\n{err}"
    assert field in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize(("flags", "toml", "field"), [c[1:] for c in RUN_CASES], ids=[c[0] for c in RUN_CASES])
def test_run_refuses_bad_input_before_anything_starts(
    tmp_path: Path, flags: tuple[str | bytes, ...], toml: str, field: str
) -> None:
    config: tuple[str, ...] = ()
    if toml:
        path = tmp_path / "run.toml"
        path.write_bytes(toml.encode("utf-8", "surrogateescape"))
        config = ("--config", str(path))
    done = _cli(tmp_path, "run", "--log-dir", str(tmp_path / "runs"), "--tests", "simple", *config, *flags)
    _assert_refused(done, field)
    assert not (tmp_path / "runs").exists(), "no run directory"
    assert not list(tmp_path.glob("runs-*")), "no run directory"
    assert not (tmp_path / "locks").exists(), "no lock"


def test_keep_on_iris_local_is_refused_naming_the_fix(tmp_path: Path) -> None:
    """An iris-local cluster cannot be kept: the one line says what to do instead (a standing Iris, attached)."""
    done = _cli(tmp_path, "run", "--log-dir", str(tmp_path / "runs"), "--cluster", "iris-local", "--keep")
    _assert_refused(done, "--keep")
    err = done.stderr.decode()
    assert "cluster start" in err and "--cluster iris --controller" in err, err
    assert not (tmp_path / "runs").exists()


CANARY_CASES: list[tuple[str, tuple[str | bytes, ...], str, str]] = [
    ("interval-nan", ("--interval", "nan"), "", "--interval"),
    ("interval-3000-years", ("--interval", "99999999999"), "", "--interval"),
    ("run-timeout-30-days", ("--run-timeout", "30d"), "", "--run-timeout"),
    ("keep-runs-huge", ("--keep-runs", "10000000000"), "", "--keep-runs"),
    ("max-bytes-huge", ("--max-bytes", "99999999T"), "", "--max-bytes"),
    ("toml-interval-inf", (), "interval = inf\n", "interval"),
    ("toml-interval-1e12", (), "interval = 1e12\n", "interval"),
    ("config-not-utf8", (), "\udcff", "not UTF-8"),
    ("state-dir-not-utf8", ("--state-dir", b"state-" + NOT_UTF8), "", "--state-dir"),
]


@pytest.mark.parametrize(("flags", "toml", "field"), [c[1:] for c in CANARY_CASES], ids=[c[0] for c in CANARY_CASES])
def test_canary_refuses_bad_input_before_anything_starts(
    tmp_path: Path, flags: tuple[str | bytes, ...], toml: str, field: str
) -> None:
    config: tuple[str, ...] = ()
    if toml:
        path = tmp_path / "canary.toml"
        path.write_bytes(toml.encode("utf-8", "surrogateescape"))
        config = ("--config", str(path))
    # A harmless run command and one run, so a canary that wrongly starts ends at once.
    argv = ("canary", "--state-dir", str(tmp_path / "state"), "--run-command", "true", "--max-runs", "1")
    done = _cli(tmp_path, *argv, *config, *flags)
    _assert_refused(done, field)
    assert not (tmp_path / "state").exists(), "no state directory"
    assert not list(tmp_path.glob("state-*")), "no state directory"


ADDRESSES_KEPT = [("::1", "::1"), ("[::1]", "::1"), ("fd00::5", "fd00::5"), ("10.0.0.5", "10.0.0.5"),
                  ("vm-a.internal", "vm-a.internal")]  # fmt: skip


@pytest.mark.parametrize(("address", "host"), ADDRESSES_KEPT)
def test_a_static_ssh_address_without_a_port_is_kept_ipv6_bare(address: str, host: str) -> None:
    """IPv6 literals keep working: bare, or in brackets (kept bare, as ssh wants its host)."""
    config = parse({"cluster": {"kind": "ssh"}, "ssh": {"hosts": [{"vm": "a", "address": address}]}})
    assert config.ssh.hosts[0].address == host
