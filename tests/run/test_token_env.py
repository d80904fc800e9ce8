"""`[iris] token_env`: the bearer token from an environment variable, checked at preflight."""

import uuid
from pathlib import Path

import pytest

from tests.helpers.supervisor_proc import run_argv, started

EXIT_S = 30.0


def _run(tmp_path: Path, iris: str) -> tuple[int, str]:
    config = tmp_path / "run.toml"
    config.write_text(f"[iris]\n{iris}\n")
    run_id = f"tok-{uuid.uuid4().hex[:8]}"
    argv = run_argv(run_id, tmp_path / "runs", "--cluster", "iris", "--controller", "http://127.0.0.1:9",
                    "--config", str(config))  # fmt: skip
    with started(argv, tmp_path, run_id) as sup:
        code = sup.wait_exit(EXIT_S)
        return code, sup.output.read_text()


def test_an_unset_token_env_is_refused_naming_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token_env naming a variable that is not set: exit 2 naming iris.token_env, before anything starts."""
    name = f"SMOKE_UNSET_{uuid.uuid4().hex[:6].upper()}"
    monkeypatch.delenv(name, raising=False)
    code, output = _run(tmp_path, f'token_env = "{name}"')
    assert code == 2 and "iris.token_env" in output and name in output, output


def test_token_env_and_token_file_together_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sources for one token is ambiguous: exit 2 naming iris.token_env."""
    monkeypatch.setenv("SMOKE_TOKEN_BOTH", "secret-value")
    token_file = tmp_path / "token"
    token_file.write_text("secret-value\n")
    code, output = _run(tmp_path, f'token_env = "SMOKE_TOKEN_BOTH"\ntoken_file = "{token_file}"')
    assert code == 2 and "iris.token_env" in output and "not both" in output, output
    assert "secret-value" not in output
