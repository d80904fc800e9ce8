"""The credentials a Connect client sends, and which of them a refusal was about.

- `Authorization: Bearer <Iris token>`: `[iris] token_file` or `token_env`, read once per
  process when its client opens.
- `Proxy-Authorization: Bearer <proxy token>`: for an Iris behind a proxy with credentials of
  its own (IAP wants an OIDC identity token there, as Iris's CLI sends it), from
  `[iris] proxy_token_file` or `proxy_token_command` (`common.controller_target.ProxyToken`).
  Each process keeps the token in memory and fetches it again REFRESH_MARGIN_S before the
  `exp` of its (unverified) JWT payload, or a quarter of its life before when it lives less
  than four margins; an opaque token after `proxy_token_ttl_s`; and once more after a
  refusal by the proxy, when the client sends that call once more (`ConnectClient.call`).
  A file is re-read on the same schedule, so a rotated credential (systemd's) is picked up.
- The command runs in a process group of its own with a parent-death signal, stdin closed, a
  bounded time, and a minimal environment (the embedded cluster's allowlist, which holds no
  token, plus gcloud's CLOUDSDK_*). Its stdout, stripped, must be one line: the token.
  Anything else is an error naming `iris.proxy_token_command` with its stderr's tail (never
  its stdout, which may hold a token).
- Who refused (`proxy_refusal`): Iris answers every refusal with JSON (a Connect body, or
  `{"error": "authentication failed"}` from its auth layer), so a 407, a 401 carrying
  `Proxy-Authenticate`, or a 401 or 403 whose body is not JSON (IAP: `Invalid IAP credentials:
  ...`) comes from the proxy in front of it: `credential=proxy` in `controller_unauthenticated`.
  Everything else refused is Iris's: `credential=iris`. Only a 401/407 is worth a new token.
No token leaves this module but in the headers: not in a repr, an error, a log line or an argv;
each one read or fetched is registered with `common.logs.redact` as well, so that a token quoted
back by a server in an error still reaches no log.
"""

import base64
import binascii
import enum
import json
import math
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from common import logs
from common.controller_target import ControllerTarget, ProxyToken
from common.tokens import token_text
from local_cluster.environment import minimal_env
from workers.controller.model import ControllerError, ErrorCode

# Fetch a JWT again this long before its `exp` (at most a quarter of its life): time for a slow
# command, and for the clocks of the proxy and ours to differ a little.
REFRESH_MARGIN_S = 60.0
TOKEN_COMMAND_TIMEOUT_S = 20.0
MIN_COMMAND_TIMEOUT_S = 1.0
STDERR_TAIL_CHARS = 160
COMMAND_FIELD = "iris.proxy_token_command"
FILE_FIELD = "iris.proxy_token_file"
# What a token command sees besides the allowlist: gcloud's own settings (its config directory,
# its Python, an account); HOME (kept) finds its default configuration.
COMMAND_ENV_PREFIXES = ("CLOUDSDK_",)

Clock = Callable[[], float]


class Credential(enum.StrEnum):
    """Which credential a refusal was about (`controller_unauthenticated`'s `credential`)."""

    IRIS = "iris"
    PROXY = "proxy"


class ProxyRefused(ControllerError):
    """The proxy in front of Iris refused the call (`unauthenticated`; `permission_denied`: it
    knows who we are and does not admit us), or we had no proxy token to give it."""

    credential = Credential.PROXY

    def __init__(self, method: str, details: str, code: ErrorCode = ErrorCode.UNAUTHENTICATED) -> None:
        super().__init__(code, method, details)


def credential_of(exc: ControllerError) -> Credential:
    return exc.credential if isinstance(exc, ProxyRefused) else Credential.IRIS


def proxy_refusal(status: int, headers: Mapping[str, str], data: bytes) -> ErrorCode | None:
    """The code of an error answer that is the proxy's refusal rather than Iris's, else None
    (see the module's docstring; a 403 without JSON is the proxy's too: IAP's "not allowed")."""
    if status == 407 or (status == 401 and any(name.lower() == "proxy-authenticate" for name in headers)):
        return ErrorCode.UNAUTHENTICATED
    if status not in (401, 403):
        return None
    try:
        json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8 at all, or nested past the parser
        return ErrorCode.UNAUTHENTICATED if status == 401 else ErrorCode.PERMISSION_DENIED
    return None


def read_token(path: str, env_name: str = "") -> str:
    """The Iris bearer token: the file at `path` (stripped), else the environment variable named
    `env_name`, else "" (no auth). Read once per process, when its client opens; never logged,
    never put in an argv (a follower is handed the file's path or the variable's name)."""
    token = Path(path).read_text().strip() if path else os.environ.get(env_name, "").strip() if env_name else ""
    logs.redact(token)
    return token


def jwt_exp(token: str) -> float | None:
    """The `exp` claim of a JWT's payload, unverified (it only schedules the next fetch), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return float(exp)


def fresh_for(token: str, now_unix: float, ttl_s: float) -> float:
    """How long a token just fetched may be used before it is fetched again."""
    exp = jwt_exp(token)
    if exp is None:
        return ttl_s
    left = exp - now_unix
    return left - min(REFRESH_MARGIN_S, max(0.0, left) / 4)


def command_env(base: Mapping[str, str], iris_token_env: str = "") -> dict[str, str]:
    """The token command's environment: the allowlist and CLOUDSDK_*, never the Iris token's variable."""
    env = minimal_env(base) | {k: v for k, v in base.items() if k.startswith(COMMAND_ENV_PREFIXES)}
    env.pop(iris_token_env, None)
    return env


def _tail(stderr: bytes, stdout: bytes) -> str:
    """The end of the command's stderr, any line of its stdout (a token, perhaps) blanked out."""
    text = stderr.decode("utf-8", "replace")
    for word in stdout.decode("utf-8", "replace").split():
        if len(word) >= logs.MIN_SECRET_CHARS:
            text = text.replace(word, "<stdout>")
    return " ".join(text.split())[-STDERR_TAIL_CHARS:]


def run_command(argv: tuple[str, ...], env: Mapping[str, str], timeout_s: float, method: str) -> str:
    """The command's token, or a ControllerError naming iris.proxy_token_command (its stderr's tail)."""
    # Imported here: only a process that runs a token command pays for psutil (followers are many).
    from workers.groups import ProcessGroups

    groups = ProcessGroups()
    try:
        proc = groups.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    except OSError as exc:
        raise ProxyRefused(method, f"{COMMAND_FIELD}: cannot run {argv[0]!r}: {exc.strerror}") from None
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        groups.stop(proc, grace_s=0.5)
        proc.communicate()
        raise ControllerError(
            ErrorCode.DEADLINE_EXCEEDED, method, f"{COMMAND_FIELD}: no token within {timeout_s:.0f} s"
        ) from None
    groups.forget(proc)
    try:
        if proc.returncode != 0:
            raise ValueError(f"exited {proc.returncode}")
        return token_text(out.decode("utf-8", "replace"))
    except ValueError as exc:
        why = str(exc) if proc.returncode != 0 else f"its stdout is not one line (the token): it {exc}"
        raise ProxyRefused(method, f"{COMMAND_FIELD}: {why}; stderr: {_tail(err, out)}") from None


def read_token_file(path: str, method: str) -> str:
    try:
        return token_text(Path(path).read_text(encoding="utf-8", errors="replace"))
    except OSError as exc:
        raise ProxyRefused(method, f"{FILE_FIELD}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ProxyRefused(method, f"{FILE_FIELD}: {path} {exc}") from None


Fetch = Callable[[str, float], str]  # (method, timeout_s) -> token


def fetcher(source: ProxyToken, env: Mapping[str, str]) -> Fetch:
    """How to get a token from `source`: read its file, or run its command."""
    if source.file:
        return lambda method, _timeout_s: read_token_file(source.file, method)

    def fetch(method: str, timeout_s: float) -> str:
        limit = min(TOKEN_COMMAND_TIMEOUT_S, max(MIN_COMMAND_TIMEOUT_S, timeout_s))
        return run_command(source.command, env, limit, method)

    return fetch


class ProxyTokenCache:
    """One process's proxy token: fetched when first needed, kept while fresh (`fresh_for`)."""

    def __init__(self, source: ProxyToken, fetch: Fetch, wall: Clock = time.time, mono: Clock = time.monotonic):
        self.source = source
        self._fetch, self._wall, self._mono = fetch, wall, mono
        self._token = ""
        self._fresh_until = -math.inf

    def get(self, method: str, timeout_s: float) -> str:
        if not self._token or self._mono() >= self._fresh_until:
            self._token = ""  # an expired token is not kept should the fetch fail
            token = self._fetch(method, timeout_s)
            logs.redact(token)  # this process's logs show it as <redacted>, should it ever reach one
            self._fresh_until = self._mono() + fresh_for(token, self._wall(), self.source.ttl_s)
            self._token = token
        return self._token

    def drop(self) -> None:
        """The proxy refused this token: the next `get` fetches another."""
        self._token = ""

    def __repr__(self) -> str:
        return f"ProxyTokenCache({self.source!r})"


class Credentials:
    """What a process's clients send: one object per process, shared by its clients, so the
    proxy token is fetched once for all of them."""

    def __init__(self, iris_token: str = "", proxy: ProxyTokenCache | None = None) -> None:
        self._iris_token = iris_token
        self.proxy = proxy

    @classmethod
    def of(cls, token_file: str, token_env: str, proxy_token: ProxyToken) -> "Credentials":
        """Read the Iris token now; the proxy token when the first call needs it."""
        proxy = None
        if proxy_token.configured:
            proxy = ProxyTokenCache(proxy_token, fetcher(proxy_token, command_env(os.environ, token_env)))
        return cls(read_token(token_file, token_env), proxy)

    @classmethod
    def for_target(cls, target: ControllerTarget) -> "Credentials":
        return cls.of(target.token_file, target.token_env, target.proxy_token)

    def headers(self, method: str, timeout_s: float, required: bool = True) -> dict[str, str]:
        """The bearer headers for one request. Without `required` a proxy token that cannot be had
        is left out (a health check: the proxy's refusal then says it is there)."""
        headers = {"Authorization": f"Bearer {self._iris_token}"} if self._iris_token else {}
        if self.proxy is not None:
            try:
                headers["Proxy-Authorization"] = f"Bearer {self.proxy.get(method, timeout_s)}"
            except ControllerError:
                if required:
                    raise
        return headers

    def refresh_proxy(self) -> bool:
        """After the proxy refused: drop its token (True), or False when we have none to renew."""
        if self.proxy is None:
            return False
        self.proxy.drop()
        return True

    def __repr__(self) -> str:
        return f"Credentials(iris_token={'set' if self._iris_token else 'none'}, proxy={self.proxy!r})"
