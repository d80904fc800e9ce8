"""Where the local cluster listens: a Unix socket in a private directory, and what it says about itself.

    $TMPDIR/iris-smoke-cluster-XXXXXXXX/    0700, created by mkdtemp (O_EXCL, random name)
        controller.sock                     the gRPC server (`unix:/…/controller.sock`)
        cluster.json                        {"state_dir": …, "prefix": …}

Why a Unix socket: the controller is unauthenticated and `LaunchJob` runs any command as
the cluster's user. A loopback TCP port is reachable by every local user; a socket
whose directory is 0700 is reachable only by its owner (and root): connect(2) needs
search permission on every directory of the path. No port is opened at all.

Why not inside the state directory: `sun_path` holds 107 bytes, and a state directory
under a run directory under a CI's temporary tree is often longer than that.

`cluster.json` beside the socket is how anything that holds the address learns where
the cluster's container logs are and which prefix names its VMs: one mechanism for a run
that started the cluster and for one that attaches to it later. Whoever can read it can
connect anyway; it is trusted only in a directory that is ours and private.

A cluster removes its directory when it stops. One that was SIGKILLed cannot, so each
new cluster first sweeps the directories of ours whose socket refuses connections
(nobody listens) and that are older than STALE_AFTER_S (never one still being set up).

No grpc here: the supervisor's children and `local-cluster logs` import this.
"""

import contextlib
import json
import os
import shutil
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common.files import write_atomically

SCHEME = "unix:"
SOCKET_NAME = "controller.sock"
INFO_FILE = "cluster.json"
DIR_PREFIX = "iris-smoke-cluster-"
# sizeof(sockaddr_un.sun_path) on Linux is 108, one of which is the terminating NUL.
MAX_SOCKET_PATH = 107
# A directory is made and its socket bound within milliseconds; a minute is beyond doubt.
STALE_AFTER_S = 60.0


class SocketPathError(ValueError):
    """An address that is not a usable private socket of ours; the message says why."""


@dataclass(frozen=True)
class ClusterInfo:
    state_dir: str  # the container logs: `<state_dir>/vms/<vm>/<container>.log`
    prefix: str  # VM names: `<prefix>-controller`, `<prefix>-<group>-<n>-w<i>`


def make_dir() -> Path:
    """A new private directory for one cluster's socket (mkdtemp: 0700, ours, unpredictable)."""
    sweep_stale(Path(tempfile.gettempdir()))
    path = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
    sock = path / SOCKET_NAME
    if len(os.fsencode(sock)) > MAX_SOCKET_PATH:
        os.rmdir(path)
        raise SocketPathError(f"socket path {sock} exceeds {MAX_SOCKET_PATH} bytes: set TMPDIR to a shorter directory")
    return path


def address(directory: Path) -> str:
    return f"{SCHEME}{directory / SOCKET_NAME}"


def socket_of(addr: str) -> Path:
    """The socket path of a `unix:/abs/path` address; raises SocketPathError otherwise."""
    if not addr.startswith(SCHEME) or not addr[len(SCHEME) :].startswith("/"):
        raise SocketPathError(f"expected unix:/absolute/path/{SOCKET_NAME}, got {addr!r}")
    path = addr[len(SCHEME) :]
    if "\n" in path or "\0" in path or len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise SocketPathError(f"not a usable socket path: {path!r}")
    return Path(path)


def write_info(directory: Path, info: ClusterInfo) -> None:
    write_atomically(directory / INFO_FILE, json.dumps({"state_dir": info.state_dir, "prefix": info.prefix}).encode())


def read_info(addr: str) -> ClusterInfo:
    """What the cluster at `addr` says about itself, if its directory is ours and private."""
    directory = socket_of(addr).parent
    check_private(directory)
    try:
        raw = json.loads((directory / INFO_FILE).read_bytes())
        return ClusterInfo(state_dir=str(raw["state_dir"]), prefix=str(raw["prefix"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SocketPathError(f"no cluster description at {directory / INFO_FILE}: {exc}") from None


def check_private(directory: Path) -> None:
    """A real directory (not a symlink), owned by us, with no access for group or others."""
    try:
        st = os.lstat(directory)
    except OSError as exc:
        raise SocketPathError(f"{directory}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        want = f"mode 0700, owner uid {os.getuid()}"
        raise SocketPathError(f"{directory} is not a private directory of ours (want {want})")


def remove_dir(directory: Path) -> None:
    """Socket, description and directory; only ever a directory `make_dir` made."""
    if directory.name.startswith(DIR_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)


def sweep_stale(base: Path, older_than_s: float = STALE_AFTER_S) -> None:
    """Remove socket directories of ours that nobody listens on any more."""
    for directory in base.glob(f"{DIR_PREFIX}*"):
        with contextlib.suppress(OSError, SocketPathError):
            check_private(directory)
            if time.time() - directory.stat().st_mtime > older_than_s and not listening(directory / SOCKET_NAME):
                remove_dir(directory)


def listening(path: Path, timeout_s: float = 1.0) -> bool:
    """Whether anything accepts connections on the socket at `path` (missing or refused: no).
    A listener whose backlog is full makes the connect wait: past `timeout_s`, TimeoutError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout_s)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
    return True
