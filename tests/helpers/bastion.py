"""A bastion's view of a cluster: run a command in a network namespace of its own, whose only way
out is the forwards it is given.

    python -m tests.helpers.bastion [--forward tcp:127.0.0.1:PORT=unix:/path.sock ...] -- ARGV...

An operator's bastion reaches a standing cluster through one forwarded port (`iris cluster
dashboard`'s ssh tunnel, `kubectl port-forward`, IAP): nothing else of the cluster, no worker, no
log server, answers. A run on the cluster's own machine hides that. This wrapper reproduces it:
- `unshare(CLONE_NEWNET)` gives this process a network namespace with only a loopback device,
  which is down until we bring it up. Nothing listening outside (the real Iris's controller, its
  log server, its workers) can be reached by any address from inside.
- Each `--forward LISTEN=TO` listens inside the namespace (tcp:127.0.0.1:PORT) and relays each
  connection to TO, a Unix socket path: a path in the file system crosses network namespaces,
  and a relay outside (`running_socket_forward`) carries it on to the controller's TCP port.
  That is exactly one port of the cluster, as `ssh -L` gives.
- ARGV then runs as our child, inside the namespace. SIGTERM, SIGINT and SIGUSR1 are passed on
  to it; we exit with its exit status (128 + N when a signal N ended it).
Root only (unshare needs CAP_SYS_ADMIN): the tests run as root here and in CI. A command that
cannot be isolated fails loudly; it never runs outside the namespace.
"""

import argparse
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

from tests.helpers import forward
from tests.helpers.helper_process import ready_line, running_module

CLONE_NEWNET = 0x40000000
# <linux/sockios.h>: read and set an interface's flags through an `ifreq` (name[16], short flags).
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
RELAYED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def enter_new_network_namespace() -> None:
    """Leave the host's network for a namespace of our own, with its loopback up (and nothing else)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed (needs root)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.helpers.bastion")
    parser.add_argument("--forward", action="append", default=[], help="tcp:127.0.0.1:PORT=unix:/path")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command to run inside the namespace is required after --")
    enter_new_network_namespace()
    for spec in args.forward:
        listen_at, _, to = spec.partition("=")
        server = forward.listen(listen_at)
        threading.Thread(target=forward.serve, args=(server, to), daemon=True).start()
    child = subprocess.Popen(command)

    def relay(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    for sig in RELAYED_SIGNALS:
        signal.signal(sig, relay)
    return _exit_status(child.wait())


def bastion_argv(command: list[str], forwards: dict[int, str] | None = None) -> list[str]:
    """`python <this>` arguments that run `command` (a full argv) as a bastion: only `forwards`
    (namespace TCP port -> Unix socket path outside) lead out of its network namespace."""
    flags = [f"--forward=tcp:127.0.0.1:{port}=unix:{path}" for port, path in (forwards or {}).items()]
    return ["-m", "tests.helpers.bastion", *flags, "--", *command]


@dataclass(frozen=True)
class SocketForward:
    """A relay outside the namespace: a Unix socket path that leads to one TCP port."""

    path: str
    popen: "subprocess.Popen[bytes]"


@contextlib.contextmanager
def running_socket_forward(to_host: str, to_port: int) -> Iterator[SocketForward]:
    """A Unix socket (in a short private directory: sun_path holds 108 bytes) relayed to
    to_host:to_port, listening once this yields; stopped and its directory removed after."""
    with tempfile.TemporaryDirectory(prefix="bastion-") as directory:
        path = os.path.join(directory, "port.sock")
        to = f"tcp:{to_host}:{to_port}"
        with running_module("tests.helpers.forward", "--listen", f"unix:{path}", "--to", to) as popen:
            said = ready_line(popen, "readiness line")
            assert said == forward.READY_LINE, f"the socket forward said {said!r}, not {forward.READY_LINE!r}"
            yield SocketForward(path, popen)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
