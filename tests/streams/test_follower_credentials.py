"""The log-service follower is told where its proxy token is, never the token: a file's path or the
command as a JSON argv (workers/transports.py `IrisLogTransport`, workers/logservice_follow.py)."""

import json

import pytest

from common.controller_target import ProxyToken
from workers.hosts import Role, VmHost
from workers.logservice_follow import build_parser
from workers.transports import IrisLogTransport

WORKER = VmHost("worker-0", 0, Role.WORKER, "127.0.0.1")
GCLOUD = ("gcloud", "auth", "print-identity-token", "--audiences=123.apps.googleusercontent.com")


def _flags(argv: list[str]) -> list[str]:
    return [a for a in argv if a.startswith("--proxy-token")]


def test_the_command_reaches_the_follower_as_json_and_parses_back() -> None:
    transport = IrisLogTransport("https://iris.example:443", proxy_token=ProxyToken(command=GCLOUD, ttl_s=120.0))
    argv = transport.argv(WORKER, "iris-worker", None, 5.0)
    assert _flags(argv) == [f"--proxy-token-command={json.dumps(list(GCLOUD))}", "--proxy-token-ttl=120.0"]
    args = build_parser().parse_args(argv)  # the forked follower is given exactly this argv
    assert args.proxy_token_command == GCLOUD and args.proxy_token_ttl == 120.0 and args.proxy_token_file == ""


def test_a_file_reaches_the_follower_as_its_path_and_none_gives_no_flag() -> None:
    transport = IrisLogTransport("http://iris:1", proxy_token=ProxyToken(file="/run/credentials/iap"))
    assert _flags(transport.argv(WORKER, "c", None, 5.0)) == [
        "--proxy-token-file=/run/credentials/iap",
        "--proxy-token-ttl=300.0",
    ]
    assert _flags(IrisLogTransport("http://iris:1").argv(WORKER, "c", None, 5.0)) == []


@pytest.mark.parametrize("bad", ['"gcloud"', "[]", '[""]', "[1]", "not json"])
def test_a_command_that_is_not_a_json_argv_is_a_usage_error(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["--controller", "http://x:1", "--key", "k", f"--proxy-token-command={bad}"])
    assert caught.value.code == 2 and "not a JSON list of strings" in capsys.readouterr().err
