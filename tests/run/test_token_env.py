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


def _check_config(tmp_path: Path, token_file: str, credentials: Path) -> "subprocess.CompletedProcess[str]":
    config = tmp_path / "run.toml"
    config.write_text(f'[iris]\ntoken_file = "{token_file}"\n')
    argv = [sys.executable, "-m", "supervisor", "run", "--check-config", "--cluster", "iris",
            "--controller", "http://127.0.0.1:9", "--config", str(config)]  # fmt: skip
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(credentials)}
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=EXIT_S, check=False)


def test_a_token_systemd_put_in_the_units_credentials_directory_is_accepted_as_it_made_it(tmp_path: Path) -> None:
    """systemd writes a credential 0400 and gives the unit's user read access by an ACL where it
    can (the file stays root's: `nobody` under PrivateUsers=, mode 0440 with the ACL's mask). In
    $CREDENTIALS_DIRECTORY that is accepted; the token must still be one line; the same file
    anywhere else is refused, as any token file of another user is."""
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o500)
    token = credentials / "iris-token"
    token.write_text("secret-value\n")
    token.chmod(0o440)
    os.chown(token, 65534, 65534)
    done = _check_config(tmp_path, "$CREDENTIALS_DIRECTORY/iris-token", credentials)
    assert done.returncode == 0, done.stderr
    assert '"token_file": "' + str(token) in done.stdout and "secret-value" not in done.stdout
    elsewhere = tmp_path / "iris-token"
    elsewhere.write_text("secret-value\n")
    elsewhere.chmod(0o440)
    os.chown(elsewhere, 65534, 65534)
    refused = _check_config(tmp_path, str(elsewhere), credentials)
    assert refused.returncode == 2 and "chown" in refused.stderr, refused.stderr
    token.chmod(0o640)
    token.write_text("secret-value-1\nsecret-value-2\n")
    two_lines = _check_config(tmp_path, "$CREDENTIALS_DIRECTORY/iris-token", credentials)
    assert two_lines.returncode == 2 and "more than one line" in two_lines.stderr, two_lines.stderr
