"""The small typed protocol from a child to the supervisor.

A child writes one JSON object per line to its own pipe; only that child writes to it,
so lines never mix. The supervisor reads every pipe from one poll loop and never blocks:
`MessageReader.feed` takes whatever bytes arrived and returns the complete messages.

A message always fits: the sender caps long strings in the body (a job's 2 MB error, a
controller's string) with a visible marker. A line that still arrives over the limit, or
garbled, is dropped alone: the reader skips to its newline and keeps every other line of
the same read, and reports the drop with its size.
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
# A string in a message is cut to this first (a job error, a log line: 64 KiB is plenty
# to read), and halved while the message is still too long, down to the minimum.
STRING_CAP_BYTES = 64 << 10
MIN_STRING_CAP_BYTES = 64
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


def cap_text(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8 (on a character boundary), then a marker
    saying how many bytes were left out: `…[truncated 1,234,567 bytes]`."""
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    kept = raw[:max_bytes].decode(errors="ignore")
    return f"{kept}…[truncated {len(raw) - len(kept.encode()):,} bytes]"


def _cap_strings(value: Any, max_bytes: int) -> Any:
    if isinstance(value, str):
        return cap_text(value, max_bytes)
    if isinstance(value, dict):
        return {key: _cap_strings(item, max_bytes) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_cap_strings(item, max_bytes) for item in value]
    return value


def capped(kind: Kind, body: dict[str, Any]) -> bytes | None:
    """The message's line with its strings capped (each at most STRING_CAP_BYTES, halved
    while the line is still too long) so that it fits; None if it cannot (a list too long)."""
    cap = STRING_CAP_BYTES
    while cap >= MIN_STRING_CAP_BYTES:
        data = encode(kind, _cap_strings(body, cap))
        if len(data) <= MAX_MESSAGE_BYTES:
            return data
        cap //= 2
    return None


class Channel:
    """The child's end: blocking writes of whole lines to the pipe, each one fitting."""

    def __init__(self, fd: int, log: Any = None) -> None:
        self.fd = fd
        self._log = log

    def send(self, kind: Kind, **body: Any) -> None:
        # Scrubbed: the supervisor writes what it is sent to results.json and its own log, and
        # never knew the token this child read (a controller's error may quote it).
        body = logs.scrubbed(body)
        data = encode(kind, body)
        if len(data) > MAX_MESSAGE_BYTES:
            fitting = capped(kind, body)
            if self._log is not None:
                event = "message_capped" if fitting is not None else "message_dropped"
                self._log.warning(event, kind=kind, message_bytes=len(data), limit_bytes=MAX_MESSAGE_BYTES)
            if fitting is None:
                return
            data = fitting
        # A broken pipe: the supervisor is gone; parent-death handling will end this process.
        with contextlib.suppress(BrokenPipeError):
            write_all(self.fd, data)


class DropReason(enum.StrEnum):
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class Dropped:
    """A line the reader could not take: its size in bytes (without the newline) and why."""

    reason: DropReason
    size: int
    head: str = ""  # its first bytes, for a garbled one


class MessageReader:
    """The supervisor's end for one child: reassembles lines from arbitrary chunks.

    Lines it cannot take are dropped one by one and collected for `take_dropped`; the
    other lines of the same chunk are kept. An over-long line is never buffered: past
    MAX_MESSAGE_BYTES its bytes are only counted until its newline.
    """

    def __init__(self) -> None:
        self._partial = bytearray()
        self._skipped: int | None = None  # bytes of an over-long line seen so far
        self._dropped: list[Dropped] = []

    def feed(self, chunk: bytes) -> list[Message]:
        if self._skipped is not None:
            newline = chunk.find(b"\n")
            if newline < 0:
                self._skipped += len(chunk)
                return []
            self._dropped.append(Dropped(DropReason.TOO_LARGE, self._skipped + newline))
            self._skipped, chunk = None, chunk[newline + 1 :]
        self._partial += chunk
        *lines, rest = self._partial.split(b"\n")
        if len(rest) > MAX_MESSAGE_BYTES:
            self._partial, self._skipped = bytearray(), len(rest)
        else:
            self._partial = bytearray(rest)
        return [m for m in map(self._decode, lines) if m is not None]

    def _decode(self, line: bytearray) -> Message | None:
        if not line:
            return None
        if len(line) > MAX_MESSAGE_BYTES:
            self._dropped.append(Dropped(DropReason.TOO_LARGE, len(line)))
            return None
        try:
            return decode(bytes(line))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self._dropped.append(Dropped(DropReason.MALFORMED, len(line), bytes(line[:80]).decode(errors="replace")))
            return None

    def take_dropped(self, at_end: bool = False) -> list[Dropped]:
        """The lines dropped since the last call; `at_end` (the pipe closed) adds an
        over-long line cut off by the end."""
        if at_end and self._skipped is not None:
            self._dropped.append(Dropped(DropReason.TOO_LARGE, self._skipped))
            self._skipped = None
        dropped, self._dropped = self._dropped, []
        return dropped


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
