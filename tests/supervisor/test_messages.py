"""The child-to-supervisor protocol survives arbitrary chunking; a bad line is dropped alone."""

import select
import time
from pathlib import Path
from typing import Any

import orjson

from common.messages import MAX_MESSAGE_BYTES, Dropped, DropReason, Kind, MessageReader, cap_text, encode
from supervisor.children import ChildRecord, ChildSpec
from supervisor.loop import Loop
from supervisor.pipes import ChildPipes
from tests.helpers.forked import forked_child
from tests.messages import ProbeStats
from workers.messages import Ready

BIG_ERROR_BYTES = 2_000_000


def test_messages_split_across_reads_are_reassembled() -> None:
    data = encode(Ready()) + encode(ProbeStats(lines=3))
    reader = MessageReader()
    got = [m for i in range(len(data)) for m in reader.feed(data[i : i + 1])]
    assert got == [Ready(), ProbeStats(lines=3)]


def test_a_garbled_line_is_dropped_alone() -> None:
    reader = MessageReader()
    got = reader.feed(encode(Ready()) + b"not json\n" + encode(ProbeStats(lines=3)))
    assert [m.kind for m in got] == [Kind.READY, Kind.STATS]
    [dropped] = reader.take_dropped()
    assert (dropped.reason, dropped.size, dropped.head) == (DropReason.MALFORMED, 8, "not json") and dropped.error


def test_an_endless_line_is_counted_not_buffered_and_the_lines_around_it_are_kept() -> None:
    """Fed a pipe's worth at a time, as the supervisor reads: the over-long line costs no memory."""
    huge = b'{"kind":"result","body":{"error":"' + b"x" * (2 << 20) + b'"}}'
    wire = encode(Ready()) + huge + b"\n" + encode(ProbeStats(lines=3))
    reader, got = MessageReader(), []
    for offset in range(0, len(wire), 65536):
        got += reader.feed(wire[offset : offset + 65536])
        assert len(reader._partial) <= MAX_MESSAGE_BYTES
    assert [m.kind for m in got] == [Kind.READY, Kind.STATS]
    assert reader.take_dropped() == [Dropped(DropReason.TOO_LARGE, len(huge))]


def test_an_over_long_line_cut_off_by_the_end_is_reported_at_the_end() -> None:
    reader = MessageReader()
    assert reader.feed(b"x" * (2 << 20)) == []
    assert reader.take_dropped() == []
    assert reader.take_dropped(at_end=True) == [Dropped(DropReason.TOO_LARGE, 2 << 20)]


def test_cap_text_cuts_on_a_character_boundary_and_says_how_much() -> None:
    assert cap_text("short", 10) == "short"
    assert cap_text("é" * 10, 5) == "éé…[truncated 16 bytes]"
    assert cap_text("x" * 1_234_577, 10) == "xxxxxxxxxx…[truncated 1,234,567 bytes]"


def test_a_child_sending_a_2_mb_error_delivers_its_result_capped_with_a_marker(tmp_path: Path) -> None:
    """The sender caps the string: the result arrives, the error readable and marked."""
    with forked_child("tests.children:big_error", {"error_bytes": BIG_ERROR_BYTES}, tmp_path) as child:
        result = child.wait_message(Kind.RESULT, timeout_s=20)
        assert child.reap(10) == 0
        [capped] = child.events("message_capped")
    assert result["test"] == "big" and result["outcome"] == "failed"
    assert result["error"].startswith("E" * 1000)
    assert result["error"].endswith(f"…[truncated {BIG_ERROR_BYTES - (64 << 10):,} bytes]")
    assert len(orjson.dumps(result)) <= MAX_MESSAGE_BYTES
    assert child.of(Kind.STATS) == [{"lines": 0, "after": True}], "the message after it arrives too"
    assert capped["kind"] == "test_result" and capped["message_bytes"] > BIG_ERROR_BYTES


class _Log:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def error(self, event: str, **fields: Any) -> None:
        self.events.append({"event": event, **fields})


def test_the_supervisor_keeps_the_lines_beside_an_over_long_one_and_says_so_once(tmp_path: Path) -> None:
    """A child writes READY, a 2 MB line and STATS in one write; the supervisor's pipes
    deliver READY and STATS and log one `message_dropped` with the line's size."""
    log, received = _Log(), []
    pipes = ChildPipes(Loop(lambda _signals: None), lambda _fd: None, log)
    record = ChildRecord(ChildSpec(name="raw", role="test", entrypoint="tests.children:oversized_line"))
    args = {"line_bytes": BIG_ERROR_BYTES}
    with forked_child("tests.children:oversized_line", args, tmp_path, name="raw") as child:
        assert child.fd is not None
        pipes.attach(record, child.fd)
        child.fd = None  # the supervisor's pipes own it now
        end = time.monotonic() + 20
        while record.fd is not None and time.monotonic() < end:
            if select.select([record.fd], [], [], 0.5)[0]:
                received += [m for _r, m in pipes.read(record.fd)]
        assert child.reap(10) == 0
    assert record.fd is None, "the pipe reached its end"
    assert received == [Ready(), ProbeStats(lines=3)]
    assert log.events == [
        {"event": "message_dropped", "child": "raw", "reason": "too_large", "message_bytes": BIG_ERROR_BYTES,
         "head": "", "error": ""},
    ]  # fmt: skip


def test_a_body_of_another_shape_is_a_protocol_error_dropped_alone() -> None:
    """A known kind with a field of the wrong type is no message: the reader names the field."""
    bad = b'{"kind":"hosts","body":{"hosts":"not a list","listing":0}}\n'
    reader = MessageReader()
    assert reader.feed(encode(Ready()) + bad + encode(ProbeStats(lines=3))) == [Ready(), ProbeStats(lines=3)]
    [dropped] = reader.take_dropped()
    assert dropped.reason is DropReason.MALFORMED and dropped.size == len(bad) - 1
    assert dropped.error == "hosts: body.hosts: expected a list, got str"


def test_an_unknown_kind_and_a_missing_field_are_protocol_errors() -> None:
    reader = MessageReader()
    wire = b'{"kind":"gossip","body":{}}\n{"kind":"discovery_ready","body":{}}\n'
    assert reader.feed(wire) == []
    assert [d.error for d in reader.take_dropped()] == [
        "unknown message kind 'gossip'",
        "discovery_ready: body.hosts: missing",
    ]
