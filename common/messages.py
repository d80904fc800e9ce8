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
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from common import logs
from common.fdio import write_all
from common.jsonshape import Json, JsonObject, ShapeError, from_json, to_json_object

# A message is a short fact; anything bigger is a protocol error, not a reason to buffer.
MAX_MESSAGE_BYTES = 1 << 20
# A string in a message is cut to this first (a job error, a log line: 64 KiB is plenty
# to read), and halved while the message is still too long, down to the minimum.
STRING_CAP_BYTES = 64 << 10
MIN_STRING_CAP_BYTES = 64


class Kind(enum.StrEnum):
    READY = "ready"
    PROGRESS = "progress"
    HOSTS = "hosts"
    RESULT = "result"
    STATS = "stats"


class Message:
    """A message a child sends: each kind of message is a frozen dataclass subclass, declared with
    the lifecycle `Kind` it counts as and its `tag` on the wire (workers/messages.py holds them):

        @dataclass(frozen=True)
        class StreamReady(Message, kind=Kind.READY, tag="stream_ready"): ...

    On the wire a message is `{"kind": <tag>, "body": <its fields>}`; `decode` reads a line back
    into its class, and refuses (ProtocolError) a tag it does not know or a body of another shape.
    A class is known once its module is imported: every reader's process imports workers.messages
    (supervisor/children.py does for the supervisor).
    """

    KIND: ClassVar[Kind]
    TAG: ClassVar[str]
    _BY_TAG: ClassVar[dict[str, type["Message"]]] = {}

    def __init_subclass__(cls, kind: Kind, tag: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if tag in Message._BY_TAG:
            raise TypeError(f"message tag {tag!r} declared twice")
        cls.KIND, cls.TAG = kind, tag
        Message._BY_TAG[tag] = cls

    @property
    def kind(self) -> Kind:
        return self.KIND

    @property
    def body(self) -> JsonObject:
        """The message's fields as JSON (what the wire carries)."""
        return to_json_object(self)


class ProtocolError(ValueError):
    """A line that is JSON but no message: an unknown kind, or a body of another shape."""


def encode(message: Message) -> bytes:
    return _line(message.TAG, message.body)


def _line(tag: str, body: Json) -> bytes:
    return orjson.dumps({"kind": tag, "body": body}) + b"\n"


def decode(line: bytes) -> Message:
    """One line back into its message; ProtocolError (or orjson's error) when it is none."""
    raw = orjson.loads(line)
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
        raise ProtocolError("not a message: no kind")
    cls = Message._BY_TAG.get(raw["kind"])
    if cls is None:
        raise ProtocolError(f"unknown message kind {raw['kind']!r}")
    try:
        return from_json(cls, raw.get("body", {}), "body")
    except ShapeError as exc:
        raise ProtocolError(f"{raw['kind']}: {exc}") from None


def cap_text(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8 (on a character boundary), then a marker
    saying how many bytes were left out: `…[truncated 1,234,567 bytes]`."""
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    kept = raw[:max_bytes].decode(errors="ignore")
    return f"{kept}…[truncated {len(raw) - len(kept.encode()):,} bytes]"


def _cap_strings(value: Json, max_bytes: int) -> Json:
    if isinstance(value, str):
        return cap_text(value, max_bytes)
    if isinstance(value, dict):
        return {key: _cap_strings(item, max_bytes) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_cap_strings(item, max_bytes) for item in value]
    return value


def capped(tag: str, body: Json) -> bytes | None:
    """The message's line with its strings capped (each at most STRING_CAP_BYTES, halved
    while the line is still too long) so that it fits; None if it cannot (a list too long)."""
    cap = STRING_CAP_BYTES
    while cap >= MIN_STRING_CAP_BYTES:
        data = _line(tag, _cap_strings(body, cap))
        if len(data) <= MAX_MESSAGE_BYTES:
            return data
        cap //= 2
    return None


class Channel:
    """The child's end: blocking writes of whole lines to the pipe, each one fitting."""

    def __init__(self, fd: int, log: Any = None) -> None:
        self.fd = fd
        self._log = log

    def send(self, message: Message) -> None:
        # Scrubbed: the supervisor writes what it is sent to results.json and its own log, and
        # never knew the token this child read (a controller's error may quote it).
        body: Json = logs.scrubbed(message.body)
        data = _line(message.TAG, body)
        if len(data) > MAX_MESSAGE_BYTES:
            fitting = capped(message.TAG, body)
            if self._log is not None:
                event = "message_capped" if fitting is not None else "message_dropped"
                self._log.warning(event, kind=message.TAG, message_bytes=len(data), limit_bytes=MAX_MESSAGE_BYTES)
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
    error: str = ""  # why it is no message: not JSON, or the protocol error (an unknown kind, a field's shape)


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
        except (orjson.JSONDecodeError, ProtocolError) as exc:
            head = bytes(line[:80]).decode(errors="replace")
            self._dropped.append(Dropped(DropReason.MALFORMED, len(line), head, str(exc)[:200]))
            return None

    def take_dropped(self, at_end: bool = False) -> list[Dropped]:
        """The lines dropped since the last call; `at_end` (the pipe closed) adds an
        over-long line cut off by the end."""
        if at_end and self._skipped is not None:
            self._dropped.append(Dropped(DropReason.TOO_LARGE, self._skipped))
            self._skipped = None
        dropped, self._dropped = self._dropped, []
        return dropped
