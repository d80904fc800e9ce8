"""`--controller` for the embedded cluster is its private socket, `unix:/…`; a TCP address is refused up front."""

from pathlib import Path

import pytest

from tests.helpers.supervisor_proc import run_argv, started

RUN_EXIT_S = 30.0


@pytest.mark.parametrize("address", ["127.0.0.1:1", "unix:relative/controller.sock"])
def test_a_local_cluster_address_that_is_not_an_absolute_unix_socket_exits_2(tmp_path: Path, address: str) -> None:
    argv = run_argv("tcp", tmp_path / "runs", "--controller", address, "--boot-timeout", "1", "--tests", "simple")
    with started(argv, tmp_path, "tcp") as sup:
        assert sup.wait_exit(RUN_EXIT_S) == 2, sup.output.read_text()[-2000:]
        output = sup.output.read_text()
        assert "--controller" in output and "unix:" in output
        assert not sup.run_dir.exists()
