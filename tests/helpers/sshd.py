"""A real OpenSSH server on 127.0.0.1, for transport tests.

Fresh ed25519 host and user keys, its own sshd_config (nothing from /etc/ssh), a free
port, a known_hosts file so clients check the host key strictly. Ready means: the port
accepts connections AND `ssh ... true` succeeds, bounded; if sshd dies first the error
carries its log. Teardown ends the listener's session processes (and what runs under
them) and the listener, and reaps them.
"""

import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from common import ports
from workers.transports import SshTransport

SSHD = "/usr/sbin/sshd"
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
LOGIN_TIMEOUT_S = 5.0
_BIND_FAILED = "Address already in use"  # sshd: "Bind to port N on 127.0.0.1 failed: Address already in use."


class _PortTaken(Exception):
    """sshd could not bind the port in its config: another process took it after `free_port`."""


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)


@dataclass
class Sshd:
    workdir: Path
    port: int = 0
    proc: "subprocess.Popen[bytes] | None" = None
    user: str = field(default_factory=lambda: psutil.Process().username())

    @property
    def user_key(self) -> Path:
        return self.workdir / "user_key"

    @property
    def home(self) -> Path:
        return self.workdir / "home"

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    @property
    def log_path(self) -> Path:
        return self.workdir / "sshd.log"

    def ssh_argv(self, *command: str) -> list[str]:
        return [
            "ssh", "-F", "none", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-p", str(self.port), "-i", str(self.user_key), "-l", self.user, "127.0.0.1", *command,
        ]  # fmt: skip

    def transport(self, remote_template: str) -> SshTransport:
        return SshTransport(
            user=self.user,
            identity_file=str(self.user_key),
            port=self.port,
            known_hosts_file=str(self.known_hosts),
            config_file="none",
            connect_timeout_s=5,
            server_alive_interval_s=2,
            server_alive_count_max=2,
            remote_template=remote_template,
        )

    def _write_keys(self) -> None:
        _keygen(self.workdir / "host_key")
        _keygen(self.user_key)
        # A HOME of its own for every login (PermitUserEnvironment): bash reads ~/.bashrc on an ssh
        # login, and root's runs `pyenv rehash` under a lock, which serialises concurrent logins.
        self.home.mkdir(exist_ok=True)
        key = self.user_key.with_suffix(".pub").read_text()
        (self.workdir / "authorized_keys").write_text(f'environment="HOME={self.home}" {key}')

    def _write_config(self) -> Path:
        host_key = self.workdir / "host_key"
        host_pub = (self.workdir / "host_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        config = self.workdir / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}\nPidFile {self.workdir / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPrintMotd no\nPermitUserEnvironment HOME\n"
            "MaxStartups 100\nMaxSessions 100\nLogLevel VERBOSE\n"
        )
        return config

    def start(self) -> "Sshd":
        """Listening and accepting logins. A port taken between `free_port` and sshd's bind (other
        tests run alongside) is retried once on a fresh one."""
        if not os.path.exists(SSHD):
            pytest.fail("install openssh-server: /usr/sbin/sshd is missing")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_keys()
        for attempt in (1, 2):
            self.port = ports.free_port()
            config = self._write_config()
            with open(self.log_path, "ab") as log:
                since = log.tell()
                self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
            try:
                self._wait_ready(since)
                return self
            except _PortTaken:
                self.stop()
                if attempt == 2:
                    pytest.fail(f"sshd could not bind a free port twice:\n{self.log_path.read_text()}")
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _wait_ready(self, since: int) -> None:
        assert self.proc is not None
        end = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                said = self.log_path.read_bytes()[since:].decode(errors="replace")
                if _BIND_FAILED in said:
                    raise _PortTaken(said)
                pytest.fail(f"sshd exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            if self._accepts() and self._login_works():
                return
            time.sleep(0.05)  # readiness poll interval, bounded by READY_TIMEOUT_S
        pytest.fail(f"sshd not ready within {READY_TIMEOUT_S} s:\n{self.log_path.read_text()}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def _login_works(self) -> bool:
        try:
            done = subprocess.run(self.ssh_argv("true"), capture_output=True, timeout=LOGIN_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:  # whoever took the port accepted and said nothing: sshd exits next
            return False
        return done.returncode == 0

    def sessions(self) -> list[psutil.Process]:
        """The per-connection sshd processes (children of the listener)."""
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def session_tree(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.proc is None:
            return
        # Sessions first, while the listener is alive to reap them; what runs under a
        # session is re-parented to pytest (a subreaper) and reaped by its leak check.
        tree = self.session_tree()
        for proc in reversed(tree):
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(tree, timeout=STOP_TIMEOUT_S)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        self.proc = None
