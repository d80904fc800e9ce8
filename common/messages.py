"""The small typed protocol from a child to the supervisor.

A child writes one JSON object per line to its own pipe; only that child writes to it,
so lines never mix. The supervisor reads every pipe from one poll loop and never blocks:
`MessageReader.feed` takes whatever bytes arrived and returns the complete messages.
"""

import enum
import os
from dataclasses import dataclass, field
from typing import Any

import orjson

# A message is a short fact; anything bigger is a protocol error, not a reason to buffer.
MAX_MESSAGE_BYTES = 1 << 20


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
        data = memoryview(encode(kind, body))
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except BrokenPipeError:
            # The supervisor is gone; parent-death handling will end this process.
            pass


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
