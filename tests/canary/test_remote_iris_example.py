"""The shipped example of a canary against a remote Iris (systemd/examples/remote-iris/) hangs
together: the drop-in loads every credential the configs read, ssh finds its key in the unit's
credentials directory, the network allow-list lets the tunnel out, and the canary's budgets fit
the unit. `systemd-analyze verify` and `security` on the instance with its drop-in are in
scripts/check_systemd.sh (tests/canary/test_units.py)."""

import json
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import psutil

from common.inputs import seconds
from common.ports import free_port
from supervisor.canary import budgets, config
from tests.canary.test_units import UNITS, _directives
from tests.helpers.sshd import SSHD, Sshd
from tests.helpers.waiting import wait_for

EXAMPLE = UNITS / "examples" / "remote-iris"
DROP_IN = EXAMPLE / "iris-smoke-canary@remote-iris.service.d" / "remote-iris.conf"
RUN_CONFIG = EXAMPLE / "remote-iris.run.toml"
TUNNEL = ["ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-L", "{port}:localhost:{remote_port}", "bastion-host"]
CREDENTIALS = re.compile(r"^\$\{?CREDENTIALS_DIRECTORY\}?/(.+)$")


def _loaded_credentials() -> dict[str, str]:
    """The drop-in's LoadCredential= lines: credential id -> source file."""
    return dict(line.split(":", 1) for line in _directives(DROP_IN)["LoadCredential"])


def _ssh_config() -> dict[str, str]:
    pairs = (line.split(None, 1) for line in (EXAMPLE / "ssh_config").read_text().splitlines())
    return {p[0].lower(): p[1] for p in pairs if len(p) == 2 and not p[0].startswith("#")}


def test_the_drop_in_loads_every_credential_the_configs_read_and_no_other() -> None:
    iris = tomllib.loads(RUN_CONFIG.read_text())["iris"]
    assert iris["tunnel_command"] == TUNNEL and iris["controller_port"] == 10000
    read = {CREDENTIALS.fullmatch(iris[k])[1] for k in ("token_file", "proxy_token_file")}  # type: ignore[index]
    read.add(CREDENTIALS.fullmatch(_ssh_config()["identityfile"])[1])  # type: ignore[index]
    loaded = _loaded_credentials()
    assert read == set(loaded) == {"iris-token", "iap-token", "ssh-key"}
    assert all(source == f"/etc/iris-smoke/{cid}" for cid, source in loaded.items()), loaded


def test_the_allow_list_lets_the_tunnel_reach_its_host_and_nothing_else() -> None:
    allowed = _directives(DROP_IN)["IPAddressAllow"]
    assert allowed == ["", "localhost", _ssh_config()["hostname"]], "reset, the tunnel's local end, its far end"


def test_the_canary_config_passes_the_run_config_and_its_budgets_fit_the_template_unit() -> None:
    unit = _directives(UNITS / "iris-smoke-canary@.service")
    values = config.load_file(EXAMPLE / "remote-iris.toml")
    assert tuple(values["run_args"]) == ("--config", f"/etc/iris-smoke/{RUN_CONFIG.name}")
    check = budgets.check(config.CanaryConfig(**values, unit_timeout_stop_s=seconds(unit["TimeoutStopSec"][0])))
    assert check.errors == [] and check.warnings == []
    plain = config.load_file(UNITS / "canary.example.toml")
    assert values["listen"].port != plain["listen"].port, "a second canary on the bastion needs its own port"
    assert values["cluster_name"] != plain["cluster_name"], "each canary names its own cluster"


def _local_ssh_config(sshd: Sshd, path: Path) -> Path:
    """The example's ssh_config, pointed at the loopback sshd instead of a real host."""
    text = (EXAMPLE / "ssh_config").read_text().replace(f"HostName {_ssh_config()['hostname']}", "HostName 127.0.0.1")
    text = re.sub(r"(?m)^( +)User \S+$", rf"\1User {sshd.user}\n\1Port {sshd.port}", text)
    text = re.sub(r"(?m)^( +)UserKnownHostsFile \S+$", rf"\1UserKnownHostsFile {sshd.known_hosts}", text)
    path.write_text(text)
    return path


def _forwarded_reply(local_port: int, server: socket.socket) -> bytes:
    """Send through the tunnel's local end; the far end's connection reaches `server`, which answers."""
    with socket.create_connection(("127.0.0.1", local_port), timeout=5) as client:
        client.sendall(b"ping")
        server.settimeout(5)
        conn, _ = server.accept()
        with conn:
            assert conn.recv(4) == b"ping"
            conn.sendall(b"pong")
        return client.recv(4)


def test_the_tunnel_command_runs_with_the_key_from_the_units_credentials_directory(tmp_path: Path) -> None:
    """The example's tunnel_command, with its ssh_config (only the host and known hosts pointed at a
    loopback sshd), forwards a port: ssh took its key from ${CREDENTIALS_DIRECTORY}/ssh-key, the
    credential the drop-in loads. Without that credential the same command cannot log in."""
    assert shutil.which("ssh") and Path(SSHD).exists(), "openssh-client/-server are missing: apt-get install them"
    sshd = Sshd(tmp_path / "sshd").start()
    try:
        credentials = tmp_path / "credentials"
        credentials.mkdir(mode=0o700)
        shutil.copy(sshd.user_key, credentials / "ssh-key")
        ssh_config = _local_ssh_config(sshd, tmp_path / "ssh_config")
        with socket.create_server(("127.0.0.1", 0)) as server:
            local_port, remote_port = free_port(), server.getsockname()[1]
            argv = [a.replace("{port}", str(local_port)).replace("{remote_port}", str(remote_port)) for a in TUNNEL]
            argv[1:1] = ["-F", str(ssh_config)]  # in the unit: the service user's ~/.ssh/config
            env = {"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": str(credentials), "HOME": str(tmp_path)}
            tunnel = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                wait_for(lambda: _listens(tunnel, local_port) or tunnel.poll() is not None, 15, "the tunnel's port")
                assert tunnel.poll() is None, tunnel.communicate(timeout=5)[1]
                assert _forwarded_reply(local_port, server) == b"pong"
            finally:
                tunnel.terminate()
                tunnel.communicate(timeout=5)
        (credentials / "ssh-key").unlink()
        login = ["ssh", "-F", str(ssh_config), "bastion-host", "true"]
        refused = subprocess.run(login, env=env, capture_output=True, timeout=15, check=False)
        assert refused.returncode == 255, "no key in the credentials directory, no login"
    finally:
        sshd.stop()


def _listens(proc: "subprocess.Popen[bytes]", port: int) -> bool:
    """`proc` listens on `port` (a test connection would itself travel the tunnel)."""
    try:
        found = psutil.Process(proc.pid).net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in found)


def test_the_run_config_passes_the_runs_own_checks_with_the_credentials_in_place(tmp_path: Path) -> None:
    """`iris-smoke run --check-config` on the example, as the unit would start it: its tokens resolved
    into $CREDENTIALS_DIRECTORY (here a directory holding files of the credential names)."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for cid in _loaded_credentials():
        (credentials / cid).write_text("secret\n")
        (credentials / cid).chmod(0o400)  # as systemd writes them
    done = subprocess.run(
        [sys.executable, "-m", "supervisor", "run", "--check-config", "--config", str(RUN_CONFIG)],
        env={"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": str(credentials), "HOME": str(tmp_path)},
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    iris = json.loads(done.stdout)["iris"]
    assert iris["token_file"] == str(credentials / "iris-token")
    assert iris["proxy_token_file"] == str(credentials / "iap-token")
