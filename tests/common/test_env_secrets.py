"""A token held in an environment variable reaches only the programs that send requests themselves."""

import os
import subprocess
from pathlib import Path

import pytest

from common import env
from workers.groups import ProcessGroups
from workers.transports import IrisLogTransport, LocalTransport, SshTransport

SECRET_NAME = "SMOKE_TEST_TOKEN_ENV"


def _printed_by(groups: ProcessGroups, keep: frozenset[str] = frozenset()) -> str:
    proc = groups.start(["sh", "-c", f'printf %s "${SECRET_NAME}"'], keep, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=10)
    groups.forget(proc)
    return out.decode()


def test_a_program_inherits_a_secret_variable_only_where_it_is_named_to_keep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_NAME, "tok-abcdef0123456789")
    monkeypatch.setattr(env, "_secret_names", set())
    groups = ProcessGroups()
    assert _printed_by(groups) == "tok-abcdef0123456789"  # not a secret until the run says so
    env.hold_secret(SECRET_NAME)
    assert _printed_by(groups) == ""  # ssh, gcloud, a tunnel
    assert _printed_by(groups, frozenset({SECRET_NAME})) == "tok-abcdef0123456789"  # the follower
    assert os.environ[SECRET_NAME] == "tok-abcdef0123456789"  # our own environment is untouched


def test_only_the_iris_follower_keeps_the_token_variable(tmp_path: Path) -> None:
    assert IrisLogTransport("http://127.0.0.1:1", token_env=SECRET_NAME).inherited_secrets == {SECRET_NAME}
    assert IrisLogTransport("http://127.0.0.1:1", token_file="/x").inherited_secrets == frozenset()
    assert SshTransport(user="u").inherited_secrets == frozenset()
    assert LocalTransport(state_dir=str(tmp_path)).inherited_secrets == frozenset()
