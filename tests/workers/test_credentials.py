"""The proxy token (IAP's `Proxy-Authorization`): when it is fetched again, how its command runs,
and which credential a refusal names (workers/controller/credentials.py).

The cache is driven by a fake clock; the command is a real subprocess; the refusal and the one
retry go through the real ConnectClient against a loopback server that plays the proxy.
"""

import base64
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from common import logs
from common.controller_target import ProxyToken
from tests.helpers.clock import FakeClock
from tests.helpers.http_stub import Stub, serving
from workers.controller.connect_http import ConnectClient
from workers.controller.credentials import (
    Credential,
    Credentials,
    ProxyRefused,
    ProxyTokenCache,
    command_env,
    credential_of,
    fetcher,
    jwt_exp,
    proxy_refusal,
    run_command,
)
from workers.controller.model import ControllerError, ErrorCode

METHOD = "iris.cluster.ControllerService/ListJobs"
COMMAND = ProxyToken(command=("mint",))


def _jwt(exp: float) -> str:
    def part(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'exp': exp, 'aud': 'x'})}.c2lnbmF0dXJl"


@dataclass
class Minter:
    """A token source that counts its fetches; `lifetime_s` None mints opaque tokens."""

    clock: FakeClock
    lifetime_s: float | None = None
    tokens: list[str] = field(default_factory=list)

    def __call__(self, _method: str, _timeout_s: float) -> str:
        n = len(self.tokens) + 1
        token = f"opaque-token-{n:04d}" if self.lifetime_s is None else _jwt(self.clock.now + self.lifetime_s)
        self.tokens.append(token)
        return token


def _cache(lifetime_s: float | None, ttl_s: float = 300.0) -> tuple[ProxyTokenCache, Minter, FakeClock]:
    clock = FakeClock(1_800_000_000.0)
    minter = Minter(clock, lifetime_s)
    return ProxyTokenCache(ProxyToken(command=("mint",), ttl_s=ttl_s), minter, wall=clock, mono=clock), minter, clock


def test_jwt_exp_reads_the_unverified_payload_and_anything_else_is_opaque() -> None:
    assert jwt_exp(_jwt(1_800_000_123)) == 1_800_000_123.0
    for opaque in ("ya29.opaque", "a.b.c", "", _jwt(float("nan")).replace("NaN", '"soon"'), "a.bm90IGpzb24.c"):
        assert jwt_exp(opaque) is None, opaque


def test_an_hour_long_jwt_is_kept_until_a_minute_before_its_exp() -> None:
    cache, minter, clock = _cache(3600.0)
    first = cache.get(METHOD, 5.0)
    clock.now += 3600 - 60 - 0.01
    assert cache.get(METHOD, 5.0) == first and len(minter.tokens) == 1
    clock.now += 0.02
    assert cache.get(METHOD, 5.0) != first and len(minter.tokens) == 2


def test_a_short_jwt_is_fetched_again_a_quarter_of_its_life_before_its_exp() -> None:
    cache, minter, clock = _cache(3.0)
    first = cache.get(METHOD, 5.0)
    clock.now += 2.2
    assert cache.get(METHOD, 5.0) == first
    clock.now += 0.1
    assert cache.get(METHOD, 5.0) != first and len(minter.tokens) == 2


def test_an_expired_jwt_is_fetched_again_at_each_use() -> None:
    cache, minter, _ = _cache(-10.0)
    cache.get(METHOD, 5.0)
    cache.get(METHOD, 5.0)
    assert len(minter.tokens) == 2


def test_an_opaque_token_is_kept_for_proxy_token_ttl_s() -> None:
    cache, _, clock = _cache(None, ttl_s=120.0)
    assert cache.get(METHOD, 5.0) == "opaque-token-0001"
    clock.now += 119.9
    assert cache.get(METHOD, 5.0) == "opaque-token-0001"
    clock.now += 0.1
    assert cache.get(METHOD, 5.0) == "opaque-token-0002"


def test_each_token_fetched_is_redacted_from_this_processs_logs() -> None:
    """A proxy quoting our token back in an error must not put it in a log."""
    cache, _, clock = _cache(None, ttl_s=1.0)
    tokens = [cache.get(METHOD, 5.0)]
    clock.now += 1.0
    tokens.append(cache.get(METHOD, 5.0))
    assert [logs.redacted(f"HTTP 401: bad {t}") for t in tokens] == [f"HTTP 401: bad {logs.REDACTED}"] * 2


def test_a_dropped_token_is_fetched_again_at_once() -> None:
    cache, minter, _ = _cache(3600.0)
    cache.get(METHOD, 5.0)
    cache.drop()
    cache.get(METHOD, 5.0)
    assert len(minter.tokens) == 2


def test_a_failed_fetch_keeps_no_stale_token() -> None:
    cache, _, clock = _cache(None, ttl_s=10.0)
    cache.get(METHOD, 5.0)
    clock.now += 10.0

    def broken(method: str, _timeout_s: float) -> str:
        raise ProxyRefused(method, "iris.proxy_token_command: exited 1")

    cache._fetch = broken
    for _ in range(2):
        with pytest.raises(ProxyRefused):
            cache.get(METHOD, 5.0)


def test_a_token_file_is_read_again_on_the_same_schedule(tmp_path: Path) -> None:
    """A rotated file (a systemd credential) is picked up when the token it held is due, not before."""
    path = tmp_path / "proxy-token"
    path.write_text("opaque-first-token\n")
    clock = FakeClock(1_800_000_000.0)
    source = ProxyToken(file=str(path), ttl_s=60.0)
    cache = ProxyTokenCache(source, fetcher(source, {}), wall=clock, mono=clock)
    assert cache.get(METHOD, 5.0) == "opaque-first-token"
    path.write_text("opaque-second-token\n")
    clock.now += 59.0
    assert cache.get(METHOD, 5.0) == "opaque-first-token"
    clock.now += 1.0
    assert cache.get(METHOD, 5.0) == "opaque-second-token"


@pytest.mark.parametrize("content", ["", "two words\n", "line-one\nline-two\n"])
def test_a_token_file_without_one_token_is_refused_naming_the_field(tmp_path: Path, content: str) -> None:
    path = tmp_path / "proxy-token"
    path.write_text(content)
    with pytest.raises(ProxyRefused, match=r"iris\.proxy_token_file") as caught:
        fetcher(ProxyToken(file=str(path)), {})(METHOD, 5.0)
    assert "line-one" not in str(caught.value) and "words" not in str(caught.value)
    with pytest.raises(ProxyRefused, match=r"iris\.proxy_token_file: cannot read"):
        fetcher(ProxyToken(file=str(tmp_path / "missing")), {})(METHOD, 5.0)


# -- the command ----------------------------------------------------------------------

# Writes what it saw (its environment's names, what stdin gave) to argv[1]; prints a token.
SEES = """
import json, os, sys
json.dump({"env": dict(os.environ), "stdin": sys.stdin.read()}, open(sys.argv[1], "w"))
print("  cmd-token-" + "0001  ")
"""


def test_the_command_sees_a_minimal_environment_no_iris_token_and_a_closed_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMOKE_IRIS_TOKEN", "iris-secret-value")
    monkeypatch.setenv("SMOKE_OTHER_SECRET", "other-secret-value")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    seen = tmp_path / "seen.json"
    source = ProxyToken(command=(sys.executable, "-c", SEES, str(seen)))
    credentials = Credentials.of("", "SMOKE_IRIS_TOKEN", source)
    headers = credentials.headers(METHOD, 5.0)
    assert headers == {"Authorization": "Bearer iris-secret-value", "Proxy-Authorization": "Bearer cmd-token-0001"}
    saw = json.loads(seen.read_text())
    assert saw["stdin"] == ""
    assert saw["env"]["CLOUDSDK_CONFIG"] == str(tmp_path / "gcloud") and "PATH" in saw["env"] and "HOME" in saw["env"]
    assert not [v for v in saw["env"].values() if "secret-value" in v]
    assert "cmd-token-0001" not in repr(credentials) and "iris-secret-value" not in repr(credentials)


def test_the_iris_tokens_variable_is_kept_from_the_command_whatever_its_name() -> None:
    env = command_env({"PATH": "/bin", "CLOUDSDK_IRIS": "iris-secret", "CLOUDSDK_CORE_PROJECT": "p"}, "CLOUDSDK_IRIS")
    assert env == {"PATH": "/bin", "CLOUDSDK_CORE_PROJECT": "p"}


def _script(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("import sys; sys.stderr.write('ERROR: (gcloud.auth) no credentialed account'); sys.exit(1)", "exited 1"),
        ("print('tok-aaaaaaaaaaaa'); print('tok-bbbbbbbbbbbb');"
         "import sys; sys.stderr.write('printed tok-aaaaaaaaaaaa twice')", "not one line"),
        ("print('')", "not one line"),
    ],
)  # fmt: skip
def test_a_command_without_one_token_is_an_error_naming_the_field_and_its_stderr(code: str, why: str) -> None:
    with pytest.raises(ProxyRefused) as caught:
        run_command(_script(code), {"PATH": "/usr/bin:/bin"}, 10.0, METHOD)
    details = caught.value.details
    assert details.startswith("iris.proxy_token_command: ") and why in details, details
    assert "tok-aaaaaaaaaaaa" not in details and "tok-bbbbbbbbbbbb" not in details, details
    assert "no credentialed account" in details or "stderr" in details
    assert credential_of(caught.value) is Credential.PROXY


def test_a_command_that_hangs_is_stopped_within_its_time() -> None:
    started = time.monotonic()
    with pytest.raises(ControllerError) as caught:
        run_command(_script("import time; time.sleep(60)"), {}, 0.5, METHOD)
    assert caught.value.code is ErrorCode.DEADLINE_EXCEEDED and "iris.proxy_token_command" in caught.value.details
    assert time.monotonic() - started < 5.0


def test_a_command_that_cannot_run_is_an_error_naming_the_field() -> None:
    with pytest.raises(ProxyRefused, match=r"iris\.proxy_token_command: cannot run '/nonexistent/gcloud'"):
        run_command(("/nonexistent/gcloud",), {}, 5.0, METHOD)


# -- who refused, and the one retry ------------------------------------------------------


UNAUTHENTICATED, PERMISSION_DENIED = ErrorCode.UNAUTHENTICATED, ErrorCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("status", "headers", "body", "proxy"),
    [
        (401, {}, b"Invalid IAP credentials: empty token", UNAUTHENTICATED),
        (401, {}, b"<html>401</html>", UNAUTHENTICATED),
        (407, {}, b'{"code": "unauthenticated"}', UNAUTHENTICATED),
        (401, {"Proxy-Authenticate": "Bearer"}, b'{"code": "unauthenticated"}', UNAUTHENTICATED),
        (403, {}, b"<html>You don't have access</html>", PERMISSION_DENIED),
        (401, {}, b'{"code": "unauthenticated", "message": "invalid token"}', None),
        (401, {}, b'{"error": "authentication failed"}', None),
        (403, {}, b'{"code": "permission_denied", "message": "role"}', None),
        (500, {}, b"oops", None),
    ],
)
def test_who_refused(status: int, headers: dict[str, str], body: bytes, proxy: ErrorCode | None) -> None:
    assert proxy_refusal(status, headers, body) is proxy


@dataclass
class Seen:
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Proxy-Authorization)


def _handler(seen: Seen) -> type[Stub]:
    class Proxy(Stub):
        """Plays IAP and Iris by path: `/admit/<token>/...` admits only that proxy token."""

        def do_POST(self) -> None:
            self.body()
            token = self.headers.get("Proxy-Authorization", "").removeprefix("Bearer ")
            seen.requests.append((self.path, token))
            if self.path.startswith("/admit/") and self.path.split("/")[2] != token:
                self.answer(401, b"Invalid IAP credentials: Unable to parse JWT")
            elif self.path == "/iris/refuses":
                self.answer(401, b'{"error": "authentication failed"}')
            elif self.path == "/iap/forbids":
                self.answer(403, b"<html>You don't have access</html>")
            else:
                self.answer(200, b"{}")

    return Proxy


@pytest.fixture
def proxy() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    with serving(_handler(seen)) as url:
        yield url, seen


def _client(url: str) -> tuple[ConnectClient, Minter]:
    minter = Minter(FakeClock(1_800_000_000.0))
    return ConnectClient(url, Credentials("iris-token", ProxyTokenCache(COMMAND, minter))), minter


def test_a_token_is_fetched_once_for_many_calls(proxy: tuple[str, Seen]) -> None:
    url, seen = proxy
    client, minter = _client(url)
    with client:
        for _ in range(3):
            client.call("admit/opaque-token-0001/m", {}, 5.0)
    assert minter.tokens == ["opaque-token-0001"] and len(seen.requests) == 3


def test_a_refusal_by_the_proxy_fetches_a_token_again_and_sends_the_call_once_more(proxy: tuple[str, Seen]) -> None:
    url, seen = proxy
    client, minter = _client(url)
    with client:
        assert client.call("admit/opaque-token-0002/m", {}, 5.0) == {}
    assert [token for _, token in seen.requests] == ["opaque-token-0001", "opaque-token-0002"]
    assert len(minter.tokens) == 2


def test_a_second_refusal_by_the_proxy_is_unauthenticated_naming_the_proxy(proxy: tuple[str, Seen]) -> None:
    url, seen = proxy
    client, minter = _client(url)
    with client, pytest.raises(ProxyRefused) as caught:
        client.call("admit/never/m", {}, 5.0)
    assert caught.value.code is ErrorCode.UNAUTHENTICATED and credential_of(caught.value) is Credential.PROXY
    assert "Invalid IAP credentials" in caught.value.details
    assert len(seen.requests) == 2 and len(minter.tokens) == 2
    assert not [t for t in minter.tokens if t in str(caught.value)]


def test_a_refusal_by_iris_names_iris_and_is_not_sent_again(proxy: tuple[str, Seen]) -> None:
    url, seen = proxy
    client, minter = _client(url)
    with client, pytest.raises(ControllerError) as caught:
        client.call("iris/refuses", {}, 5.0)
    assert caught.value.code is ErrorCode.UNAUTHENTICATED and credential_of(caught.value) is Credential.IRIS
    assert len(seen.requests) == 1 and len(minter.tokens) == 1


def test_without_a_proxy_credential_the_proxys_refusal_says_what_to_set(proxy: tuple[str, Seen]) -> None:
    url, seen = proxy
    with ConnectClient(url, Credentials("iris-token")) as client, pytest.raises(ProxyRefused) as caught:
        client.call("admit/some-token/m", {}, 5.0)
    assert "proxy_token_command" in caught.value.details and len(seen.requests) == 1


def test_a_proxy_that_knows_us_and_forbids_names_the_proxy_and_is_not_sent_again(proxy: tuple[str, Seen]) -> None:
    url, seen = proxy
    client, minter = _client(url)
    with client, pytest.raises(ProxyRefused) as caught:
        client.call("iap/forbids", {}, 5.0)
    assert caught.value.code is ErrorCode.PERMISSION_DENIED and credential_of(caught.value) is Credential.PROXY
    assert len(seen.requests) == 1 and len(minter.tokens) == 1
