"""The small typed protocol from a child to the supervisor.

A child writes one JSON object per line to its own pipe; only that child writes to it,
so lines never mix. The supervisor reads every pipe from one poll loop and never blocks:
`MessageReader.feed` takes whatever bytes arrived and returns the complete messages.
"""

import contextlib
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from common import logs
from common.fdio import write_all

# A message is a short fact; anything bigger is a protocol error, not a reason to buffer.
MAX_MESSAGE_BYTES = 1 << 20
# A host entry is a handful of validated names (<= 63 characters each) and an address
# (<= 253): under 1 KiB encoded, so this many stay well under MAX_MESSAGE_BYTES.
HOSTS_PER_MESSAGE = 500


class Kind(enum.StrEnum):
    READY = "ready"
    PROGRESS = "progress"
    HOSTS = "hosts"
    RESULT = "result"
    STATS = "stats"


@dataclass(frozen=True)
class Message:
    kind: Kind
    body: dict[str, Any] = field(default_factory=dict)


def encode(kind: Kind, body: dict[str, Any]) -> bytes:
    return orjson.dumps({"kind": kind, "body": body}) + b"\n"


def decode(line: bytes) -> Message:
    raw = orjson.loads(line)
    return Message(Kind(raw["kind"]), raw.get("body", {}))


class Channel:
    """The child's end: blocking writes of whole lines to the pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, kind: Kind, **body: Any) -> None:
        # A broken pipe: the supervisor is gone; parent-death handling will end this process.
        # Scrubbed: the supervisor writes what it is sent to results.json and its own log, and
        # never knew the token this child read (a controller's error may quote it).
        with contextlib.suppress(BrokenPipeError):
            write_all(self.fd, encode(kind, logs.scrubbed(body)))


class ProtocolError(ValueError):
    pass


class MessageReader:
    """The supervisor's end for one child: reassembles lines from arbitrary chunks."""

    def __init__(self) -> None:
        self._partial = bytearray()

    def feed(self, chunk: bytes) -> list[Message]:
        self._partial += chunk
        *lines, rest = self._partial.split(b"\n")
        if len(rest) > MAX_MESSAGE_BYTES:
            self._partial.clear()
            raise ProtocolError(f"message longer than {MAX_MESSAGE_BYTES} bytes")
        self._partial = bytearray(rest)
        messages = []
        for line in lines:
            if not line:
                continue
            try:
                messages.append(decode(bytes(line)))
            except (orjson.JSONDecodeError, KeyError, ValueError) as exc:
                raise ProtocolError(f"bad message: {line[:80]!r}") from exc
        return messages


def host_parts(hosts: Sequence[Any], listing: int) -> Iterator[dict[str, Any]]:
    """One listing as the bodies of consecutive HOSTS messages: `part` of `parts`, in order.

    A listing of any size fits: 10,000 hosts in one message were over MAX_MESSAGE_BYTES, so
    the supervisor dropped every listing and started no stream at all.
    """
    parts = max(1, -(-len(hosts) // HOSTS_PER_MESSAGE))
    for part in range(parts):
        chunk = hosts[part * HOSTS_PER_MESSAGE : (part + 1) * HOSTS_PER_MESSAGE]
        yield {"hosts": list(chunk), "listing": listing, "part": part, "parts": parts, "ok": True}


class HostsAssembler:
    """The supervisor's end: whole listings from HOSTS parts.

    A pipe keeps the parts in order, so a part other than the next expected one means the
    sender restarted mid-listing: the partial listing is dropped and the next `part == 0`
    starts afresh. A body without `parts` is a whole listing (one message).
    """

    def __init__(self) -> None:
        self._listing: Any = None
        self._next_part = 0
        self._hosts: list[Any] = []

    def feed(self, body: dict[str, Any]) -> list[Any] | None:
        """Add one part; return the whole listing when this was its last part."""
        part, parts = int(body.get("part", 0)), int(body.get("parts", 1))
        if part == 0:
            self._listing, self._hosts = body.get("listing"), []
        elif (body.get("listing"), part) != (self._listing, self._next_part):
            self._listing, self._next_part, self._hosts = None, 0, []
            return None
        self._hosts += body.get("hosts", [])
        self._next_part = part + 1
        if self._next_part < parts:
            return None
        whole, self._listing, self._next_part, self._hosts = self._hosts, None, 0, []
        return whole
