"""Real-Iris flags and config: each bad combination is refused up front with exit 2, naming the flag."""

from pathlib import Path

import pytest

from supervisor.cli import main
from supervisor.config import ClusterKind, parse


def _refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> str:
    code = main(["run", "--log-dir", str(tmp_path / "runs"), *argv])
    assert code == 2
    assert not (tmp_path / "runs").exists(), "a refused run must not create anything"
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (("--cluster", "iris"), "--cluster iris"),
        (("--cluster", "iris", "--controller", "127.0.0.1:10000"), "--controller"),
        (("--cluster", "iris", "--controller", "http://h:1/$(id)"), "--controller"),
        (("--cluster", "iris-local", "--iris-bin", "/nonexistent/iris"), "--iris-bin"),
        (("--cluster", "iris-local", "--controller", "http://127.0.0.1:1"), "--cluster iris-local"),
    ],
)
def test_bad_iris_flags_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: tuple[str, ...], names: str
) -> None:
    assert names in _refused(capsys, tmp_path, *argv)


def test_iris_table_parses_and_unknown_keys_are_refused() -> None:
    config = parse({"cluster": {"kind": "iris-local"}, "iris": {"bin": "/opt/iris/bin/iris", "token_file": "/t"}})
    assert config.cluster is ClusterKind.IRIS_LOCAL and config.cluster.real_iris
    assert config.iris.bin == "/opt/iris/bin/iris" and config.iris.token_file == "/t"
    assert config.discovery_every_s == 1.0 and config.monitor_every_s == 0.25
    with pytest.raises(ValueError, match=r"iris\.tokenfile: unknown key"):
        parse({"iris": {"tokenfile": "/t"}})
