"""Programs that bind the port they are told lose a race now and then on a busy machine: each
starter recognizes the bind failure and tries once more on a fresh port (the real sshd here; the
real Iris in tests/iris/test_iris_local_boot.py)."""

import subprocess
from pathlib import Path

import pytest

from tests.helpers.ports import first_free_port_taken
from tests.helpers.sshd import Sshd


def test_the_sshd_helper_retries_a_port_taken_before_sshd_binds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with first_free_port_taken(monkeypatch) as taken:
        server = Sshd(tmp_path / "sshd").start()
        try:
            assert server.port != taken
            login = subprocess.run(server.ssh_argv("true"), capture_output=True, timeout=10, check=False)
            assert login.returncode == 0, login.stderr
        finally:
            server.stop()
    assert f"Bind to port {taken} on 127.0.0.1 failed: Address already in use" in server.log_path.read_text()
