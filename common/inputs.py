"""Checks on values people type, shared by the run and the canary: one bound per kind of setting.

Each check returns the value or raises ValueError with what would be accepted; the caller
prefixes the field's name (`run.timeout_s: ...`, `--interval: ...`), so every refusal
names both the field and the fix.
"""

import ipaddress
import math
import os
import re
import stat
import urllib.parse

from common.tokens import token_text

# poll(2), select and the children's waits take milliseconds in a C int: past 2**31 - 1 ms
# (24.8 days) a timeout overflows and the wait returns at once or raises. No deadline,
# interval or grace this program knows needs more than a week.
MAX_SECONDS = 7 * 86400.0
# Replicas, task counts, runs kept: far above any real cluster, far below a typo like 1e12.
MAX_COUNT = 100_000
# Byte budgets (the canary's disk cap): 1 PiB.
MAX_BYTES = 1 << 50
# One log line held in memory by a stream child.
MAX_LINE_BYTES = 16 << 20
# A POSIX-portable login name; it reaches ssh's argv as `-l USER`, so no leading "-".
SSH_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}", re.ASCII)
# The embedded controller: gRPC's `HOST:PORT` or `unix:/abs/path`; a real Iris: an http(s) URL.
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])"
_PORT = r"(?:[1-9][0-9]{0,4})"
GRPC_TARGET = re.compile(rf"{_HOST}:{_PORT}|unix:/[A-Za-z0-9._/-]{{1,200}}", re.ASCII)
IRIS_URL = re.compile(rf"https?://{_HOST}(?::{_PORT})?/?", re.ASCII)


# systemd hands a unit's credentials (LoadCredential=) to it in this directory; a config file
# cannot use the unit's `%d`, so a path may start with the variable instead.
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
_CREDENTIALS_PREFIXES = (f"${CREDENTIALS_ENV}/", f"${{{CREDENTIALS_ENV}}}/")

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*", re.ASCII)
_UNIT_S = {None: 1.0, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_HINT = "a duration like 90, 90s, 10m or 1h"


def seconds(value: object, *, allow_zero: bool = False) -> float:
    """A duration, the one syntax for flags and config alike: a number of seconds, or a string
    `90`, `90s`, `10m`, `1h` (also `250ms`, `2d`); finite, > 0 (or >= 0), at most MAX_SECONDS."""
    if isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        value = float(match[1]) * _UNIT_S[match[2]]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be {DURATION_HINT}, got {value!r}")
    if not math.isfinite(value) or value > MAX_SECONDS:
        raise ValueError(f"must be a finite duration up to {MAX_SECONDS:.0f}s (7 days), got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def whole(value: object, minimum: int, maximum: int) -> int:
    """An integer in [minimum, maximum] (bool is not an integer here)."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ValueError(f"must be an integer from {minimum} to {maximum}, got {value!r}")
    return value


def ssh_user(value: str) -> str:
    if SSH_USER.fullmatch(value) is None:
        raise ValueError(f"must be a login name ({SSH_USER.pattern}), got {value!r}")
    return value


def controller_address(value: str, *, iris: bool, tcp: bool) -> str:
    """`--controller`: an http(s) URL for a real Iris; unix:/abs/path for the embedded API,
    or HOST:PORT where `tcp` allows it."""
    if iris:
        if IRIS_URL.fullmatch(value) is None:
            raise ValueError(f"an Iris controller is a URL like http://127.0.0.1:10000, got {value!r}")
    elif GRPC_TARGET.fullmatch(value) is None or (value.startswith("unix:") and "/../" in value + "/"):
        raise ValueError(f"an embedded controller is HOST:PORT or unix:/abs/path, got {value!r}")
    elif not tcp and not value.startswith("unix:"):
        raise ValueError(
            "the local cluster listens on a Unix socket, unix:/PATH/controller.sock "
            f"(as `iris-smoke local-cluster` or `run --keep` print it), got {value!r}"
        )
    port = value.rsplit(":", 1)[-1].rstrip("/")
    if port.isdigit() and int(port) > 65535:
        raise ValueError(f"port {port} is not a TCP port (1-65535)")
    return value


def credential_path(value: str) -> str:
    """A file path with a leading `$CREDENTIALS_DIRECTORY/` or `${CREDENTIALS_DIRECTORY}/` made
    the unit's credentials directory: the one expansion a config path gets (no other `$`, no `~`)."""
    for prefix in _CREDENTIALS_PREFIXES:
        if value.startswith(prefix):
            base = os.environ.get(CREDENTIALS_ENV, "")
            if not base:
                raise ValueError(
                    f"{value!r} starts with ${CREDENTIALS_ENV}, but {CREDENTIALS_ENV} is not set: systemd sets it "
                    f"in a unit with LoadCredential=; elsewhere give the file's own path (or set {CREDENTIALS_ENV})"
                )
            return os.path.join(base, value[len(prefix) :])
    return value


def utf8(value: str) -> str:
    """A command-line value Linux handed over as bytes that are not UTF-8 (kept as surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"must be valid UTF-8, got {value.encode('utf-8', 'surrogateescape')!r}") from None
    return value


# A bearer token is one line of at most this many bytes (Iris's JWTs are about 1 KiB).
MAX_SECRET_BYTES = 64 << 10


def _systemd_credential(path: str) -> bool:
    """Whether `path` is a file in this unit's credentials directory. systemd writes each 0400 and
    lets the unit's user alone read it: by ownership, or by an ACL where the file system has them
    (the file stays root's, `nobody` under PrivateUsers=, and the ACL's mask shows as 0440), in a
    directory no other unit sees. Owner and group-read are systemd's business there."""
    base = os.environ.get(CREDENTIALS_ENV, "")
    return bool(base) and os.path.dirname(os.path.realpath(path)) == os.path.realpath(base)


def secret_file(path: str) -> None:
    """A token file: a regular file of ours that no one else may read or write, holding one line.

    Read here only to check it (every child that sends requests reads it again itself)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"{path} cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if st.st_mode & 0o022:
            raise ValueError(f"{path} is mode {stat.S_IMODE(st.st_mode):04o}, open to others: chmod 600 {path}")
        if not _systemd_credential(path):
            if st.st_uid != os.geteuid():
                raise ValueError(f"{path} belongs to uid {st.st_uid}, not to us (uid {os.geteuid()}): chown it")
            if st.st_mode & 0o077:
                raise ValueError(f"{path} is mode {stat.S_IMODE(st.st_mode):04o}, open to others: chmod 600 {path}")
        data = os.read(fd, MAX_SECRET_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_BYTES:
        raise ValueError(f"{path} is over {MAX_SECRET_BYTES} bytes; it should hold one token")
    try:
        token_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    except ValueError as exc:
        raise ValueError(f"{path} {exc}") from None


def loopback_url(url: str) -> bool:
    """Whether an http(s) URL's host is this machine's loopback (where plain http carries no risk)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
