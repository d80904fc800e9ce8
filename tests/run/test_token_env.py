"""`[iris] token_env`: the bearer token from an environment variable, checked at preflight."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers.supervisor_proc import REPO_ROOT, run_argv, started

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
    token_file.chmod(0o600)
    code, output = _run(tmp_path, f'token_env = "SMOKE_TOKEN_BOTH"\ntoken_file = "{token_file}"')
    assert code == 2 and "iris.token_env" in output and "not both" in output, output
    assert "secret-value" not in output


def _token_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / f"token-{uuid.uuid4().hex[:6]}"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("text", "mode", "says"),
    [
        ("secret-value-1\nsecret-value-2\n", 0o600, "more than one line"),
        ("secret-value\n", 0o644, "chmod 600"),
        ("secret-value\n", 0o640, "chmod 600"),
        ("\n", 0o600, "is empty"),
    ],
    ids=["two-lines", "world-readable", "group-readable", "empty"],
)
def test_a_token_file_must_be_one_private_line(tmp_path: Path, text: str, mode: int, says: str) -> None:
    """Refused at preflight with exit 2 naming iris.token_file and the fix; the token itself is never echoed."""
    token_file = _token_file(tmp_path, text, mode)
    code, output = _run(tmp_path, f'token_file = "{token_file}"')
    assert code == 2 and "iris.token_file" in output and says in output, output
    assert "secret-value" not in output


def test_a_token_file_of_another_user_is_refused(tmp_path: Path) -> None:
    token_file = _token_file(tmp_path, "secret-value\n")
    os.chown(token_file, 65534, 65534)  # nobody: the tests run as root, as CI does
    code, output = _run(tmp_path, f'token_file = "{token_file}"')
    assert code == 2 and "iris.token_file" in output and "chown" in output, output


def test_a_two_line_token_env_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMOKE_TOKEN_TWO", "secret-value-1\nsecret-value-2")
    code, output = _run(tmp_path, 'token_env = "SMOKE_TOKEN_TWO"')
    assert code == 2 and "iris.token_env" in output and "more than one line" in output, output
    assert "secret-value" not in output


@pytest.mark.parametrize(
    ("controller", "refused"),
    [
        ("http://10.0.0.5:10000", True),
        ("http://iris.example.com", True),
        ("https://iris.example.com", False),
        ("http://127.0.0.1:9", False),
        ("http://localhost:9", False),
        ("http://[::1]:9", False),
    ],
)
def test_a_bearer_token_over_plain_http_to_another_host_is_refused(
    tmp_path: Path, controller: str, refused: bool
) -> None:
    """Unless [iris] allow_insecure_http = true; loopback (a tunnel's local end) and https are fine."""
    token_file = _token_file(tmp_path, "secret-value\n")
    config = tmp_path / "run.toml"
    config.write_text(f'[iris]\ntoken_file = "{token_file}"\n')
    argv = ["--cluster", "iris", "--controller", controller, "--config", str(config)]
    checked = subprocess.run([sys.executable, "-m", "supervisor", "run", "--check-config", *argv],
                             capture_output=True, text=True, timeout=EXIT_S, cwd=REPO_ROOT)  # fmt: skip
    assert (checked.returncode == 2 and "allow_insecure_http" in checked.stderr) is refused, checked
    if refused:
        config.write_text(f'[iris]\ntoken_file = "{token_file}"\nallow_insecure_http = true\n')
        allowed = subprocess.run([sys.executable, "-m", "supervisor", "run", "--check-config", *argv],
                                 capture_output=True, text=True, timeout=EXIT_S, cwd=REPO_ROOT)  # fmt: skip
        assert allowed.returncode == 0, allowed
