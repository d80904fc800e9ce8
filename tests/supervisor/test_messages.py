"""The child-to-supervisor protocol survives arbitrary chunking and rejects garbage."""

import pytest

from common.messages import Kind, MessageReader, ProtocolError, encode


def test_messages_split_across_reads_are_reassembled() -> None:
    data = encode(Kind.READY, {}) + encode(Kind.STATS, {"lines": 3})
    reader = MessageReader()
    got = [m for i in range(len(data)) for m in reader.feed(data[i : i + 1])]
    assert [(m.kind, m.body) for m in got] == [(Kind.READY, {}), (Kind.STATS, {"lines": 3})]


def test_garbage_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        MessageReader().feed(b"not json\n")


def test_an_endless_line_is_refused_not_buffered() -> None:
    reader = MessageReader()
    with pytest.raises(ProtocolError):
        reader.feed(b"x" * (2 << 20))
