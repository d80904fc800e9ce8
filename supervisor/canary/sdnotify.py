"""The systemd notification protocol, without libsystemd: datagrams to `$NOTIFY_SOCKET`.

What systemd expects (sd_notify(3)):
- `NOTIFY_SOCKET` is a filesystem path or, when it starts with `@`, a name in Linux's
  abstract socket namespace (the `@` becomes a leading NUL byte).
- Each message is one datagram of newline-separated `KEY=VALUE` assignments; systemd
  reads them from an AF_UNIX SOCK_DGRAM socket and checks the sender's pid against
  `NotifyAccess=` (`main` here, so only the daemon itself may notify, never a run).
- `WATCHDOG_USEC` asks for `WATCHDOG=1` at least that often; sd_watchdog_enabled(3)
  recommends half of it. `WATCHDOG_PID`, when set, names the only process meant to ping.

Without `NOTIFY_SOCKET` (a shell, a test) every call is a no-op. A send that fails
(systemd restarting, socket gone) is dropped: notification is advice to the service
manager, and the watchdog would notice a daemon that really stopped pinging.
"""

import os
import socket
from collections.abc import Mapping

NOTIFY_SOCKET = "NOTIFY_SOCKET"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"
# What a run must not inherit: it is not the main process, so its notifications would be
# rejected (NotifyAccess=main), and it must not believe it has a watchdog to feed.
PROTOCOL_VARIABLES = (
    NOTIFY_SOCKET,
    WATCHDOG_USEC,
    WATCHDOG_PID,
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)


def socket_address(value: str) -> str | bytes:
    """The address to send to: a path, or bytes with a leading NUL for `@abstract` names."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def watchdog_interval_s(environ: Mapping[str, str], pid: int) -> float | None:
    """How often to send WATCHDOG=1 (half the timeout), or None when no watchdog is asked for."""
    usec = environ.get(WATCHDOG_USEC, "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get(WATCHDOG_PID, "")
    if owner and owner != str(pid):
        return None
    return int(usec) / 1e6 / 2


def format_message(fields: Mapping[str, str | int]) -> bytes:
    # A value with a newline would start a new assignment: systemd would read a STATUS
    # with a newline as STATUS plus a bogus key, so newlines are flattened.
    return "\n".join(f"{k}={str(v).replace(chr(10), ' ')}" for k, v in fields.items()).encode()


class Notifier:
    """One socket for the daemon's life (one descriptor, close-on-exec so runs never get it)."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        value = environ.get(NOTIFY_SOCKET, "")
        self._address = socket_address(value) if value else None
        self._sock: socket.socket | None = None
        self.sent = 0
        self.failed = 0
        if self._address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, **fields: str | int) -> bool:
        """Send one datagram of `KEY=VALUE` lines; True if it was sent."""
        if self._sock is None or self._address is None:
            return False
        try:
            self._sock.sendto(format_message(fields), self._address)
        except OSError:
            self.failed += 1
            return False
        self.sent += 1
        return True

    def ready(self, status: str) -> bool:
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str) -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask systemd for `seconds` more, from now, before its current timeout (start or stop) fires."""
        return self.notify(EXTEND_TIMEOUT_USEC=int(seconds * 1e6))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
