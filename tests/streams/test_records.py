"""Framing, encoding, resume dedupe, gaps and file recovery (in-process, no follower)."""

import os
from pathlib import Path

import orjson
import pytest

from tests.streams.conftest import seq_lines, ts, validate
from workers.stream.framing import LineFramer, Segment
from workers.stream.outfile import StreamFile, StreamFileBusy
from workers.stream.records import RecordEncoder, Resumed, ResumeOutcome
from workers.stream.timestamps import parse_prefix

RECEIVED = "2024-05-01T13:00:00.000000000Z"


def encoder() -> RecordEncoder:
    return RecordEncoder("run-1", "vm-1", 0, "worker", "iris-worker")


def records(data: bytes) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in data.splitlines()]


def feed(enc: RecordEncoder, data: bytes, max_line: int = 65536) -> list[dict[str, object]]:
    return records(enc.encode(LineFramer(max_line).feed(data), RECEIVED))


def test_fast_path_equals_slow_path() -> None:
    data = b"".join(ts(i) + b' l%d "q" \\ %% %%s \t \x01 \xc3\xa9 \xf0\x9f\x98\x80\n' % i for i in range(50))
    fast, slow = encoder(), encoder()
    out_fast = fast.encode([Segment(data)], RECEIVED)
    out_slow = slow._slow_run(data, slow._head(RECEIVED))
    assert out_fast == out_slow
    assert (fast.last_ts, fast.at_last_ts, fast.next_seq) == (slow.last_ts, slow.at_last_ts, slow.next_seq)
    validate(records(out_fast))


def test_record_fields() -> None:
    [record] = feed(encoder(), ts(7) + b" hello\n")
    assert record == {
        "seq": 0, "received": RECEIVED, "run_id": "run-1", "vm": "vm-1", "host": 0, "role": "worker",
        "container": "iris-worker", "ts": ts(7).decode(), "line": "hello",
    }  # fmt: skip


def test_framer_truncates_and_discards_the_rest_of_a_long_line() -> None:
    framer = LineFramer(100)
    out = framer.feed(ts(0) + b" " + b"x" * 500)
    assert [s.truncated for s in out] == [True] and len(out[0].data) == 100
    assert framer.pending_bytes == 0
    assert framer.feed(b"y" * 1000) == []
    assert framer.feed(b"y\n" + ts(1) + b" ok\n") == [Segment(ts(1) + b" ok\n")]


def test_framer_never_holds_more_than_one_line() -> None:
    framer = LineFramer(1000)
    for _ in range(100):
        framer.feed(b"z" * 999)
        assert framer.pending_bytes <= 1000


def test_long_line_inside_a_run_is_cut_in_place() -> None:
    data = ts(0) + b" a\n" + ts(1) + b" " + b"b" * 300 + b"\n" + ts(2) + b" c\n"
    out = feed(encoder(), data, max_line=100)
    assert [r["line"] for r in out] == ["a", "b" * 69, "c"]
    assert out[1]["truncated"] is True and "truncated" not in out[0]


def test_invalid_utf8_is_kept_visible_and_flagged() -> None:
    [record] = feed(encoder(), ts(0) + b" bad \xff\xfe end\n")
    assert record["line"] == "bad \\xff\\xfe end" and record["invalid_utf8"] is True
    validate([record])


def test_truncation_inside_a_multibyte_character_is_not_invalid_utf8() -> None:
    line = ts(0) + b" " + "é".encode() * 100 + b"\n"
    [record] = feed(encoder(), line, max_line=100)
    assert record["truncated"] is True and "invalid_utf8" not in record


def test_lines_without_timestamp_are_diagnostics_not_records() -> None:
    enc = encoder()
    out = feed(enc, b"Error: No such container: x\n" + ts(0) + b" real\n")
    assert [r["line"] for r in out] == ["real"]
    assert enc.counters.untimestamped_lines == 1 and "No such container" in enc.diagnostics[0]


def test_other_rfc3339_forms_are_normalised() -> None:
    assert parse_prefix(b"2024-05-01T12:00:00.5Z x") == ("2024-05-01T12:00:00.500000000Z", 23)
    assert parse_prefix(b"2024-05-01T14:00:00+02:00 x") == ("2024-05-01T12:00:00.000000000Z", 26)
    assert parse_prefix(b"2024-13-01T14:00:00Z x") is None


def test_resume_skips_replayed_lines_and_equal_timestamps_already_written() -> None:
    enc = encoder()
    first = feed(enc, seq_lines(0, 10))
    enc.start_resume()
    # An inclusive, second-granular --since replays everything from the start of that second.
    again = feed(enc, seq_lines(0, 15))
    assert [r["line"] for r in first + again] == [f"seq={i} payload" for i in range(15)]
    assert [r["seq"] for r in first + again] == list(range(15))
    assert enc.counters.duplicates_skipped == 10 and enc.counters.gaps == 0


def test_a_new_line_at_the_resume_timestamp_is_written() -> None:
    enc = encoder()
    feed(enc, ts(5) + b" one\n")
    enc.start_resume()
    out = feed(enc, ts(5) + b" one\n" + ts(5) + b" two\n" + ts(6) + b" three\n")
    assert [r["line"] for r in out] == ["two", "three"]


def test_resume_without_overlap_is_a_gap_bounded_by_the_lines_either_side() -> None:
    enc = encoder()
    feed(enc, seq_lines(0, 5))
    enc.start_resume()
    out = feed(enc, seq_lines(8, 10))
    [gap] = enc.resumes
    assert gap == Resumed(ResumeOutcome.NO_OVERLAP, ts(4).decode(), 4, ts(8).decode(), 5, 0)
    assert gap.gap and enc.counters.gaps == 1 and out[0]["seq"] == gap.end_seq


def test_a_new_line_at_the_resume_timestamp_proves_no_overlap() -> None:
    """Millisecond stamps (Iris): the replay may have lost a line sharing the resume point's stamp."""
    enc = encoder()
    feed(enc, ts(5) + b" a\n" + ts(5) + b" b\n")
    enc.start_resume()
    out = feed(enc, ts(5) + b" d\n" + ts(6) + b" e\n")  # "a", "b" and a "c" at ts(5) were not replayed
    assert [r["line"] for r in out] == ["d", "e"]
    [gap] = enc.resumes
    assert gap == Resumed(ResumeOutcome.NO_OVERLAP, ts(5).decode(), 1, ts(5).decode(), 2, 0)


def test_a_resume_that_replays_its_point_is_an_overlap_not_a_gap() -> None:
    """An inclusive --since replays the last line written: proof that nothing was lost."""
    enc = encoder()
    feed(enc, seq_lines(0, 5))
    enc.start_resume()
    out = feed(enc, seq_lines(4, 7))
    assert [r["line"] for r in out] == ["seq=5 payload", "seq=6 payload"]
    [resumed] = enc.resumes
    assert resumed == Resumed(ResumeOutcome.OVERLAP, ts(4).decode(), 4, ts(5).decode(), 5, 1)
    assert not resumed.gap and enc.counters.gaps == 0


def test_stream_file_recovers_seq_and_last_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "vm.jsonl"
    enc = encoder()
    path.write_bytes(enc.encode(LineFramer(65536).feed(seq_lines(0, 20) + ts(19) + b" twin\n"), RECEIVED))
    out = StreamFile(path, 65536)
    try:
        found = out.recovered
        assert (found.next_seq, found.last_ts) == (21, ts(19).decode())
        assert found.at_last_ts == enc.at_last_ts
    finally:
        out.close()


def test_a_torn_last_record_is_cut_back(tmp_path: Path) -> None:
    path = tmp_path / "vm.jsonl"
    good = encoder().encode(LineFramer(65536).feed(seq_lines(0, 3)), RECEIVED)
    path.write_bytes(good + b'{"seq":3,"received":"20')
    out = StreamFile(path, 65536)
    try:
        assert out.recovered.next_seq == 3 and out.recovered.torn_bytes > 0
        out.write(b"")
        assert path.read_bytes() == good
    finally:
        out.close()


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    first = StreamFile(tmp_path / "vm.jsonl", 65536)
    try:
        with pytest.raises(StreamFileBusy):
            StreamFile(tmp_path / "vm.jsonl", 65536)
    finally:
        first.close()


def test_files_are_appended_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "vm.jsonl"
    path.write_bytes(b"")
    for _ in range(2):
        out = StreamFile(path, 65536)
        enc = encoder()
        enc.next_seq = out.recovered.next_seq
        out.write(enc.encode(LineFramer(65536).feed(seq_lines(0, 2)), RECEIVED))
        out.close()
    assert [r["seq"] for r in records(path.read_bytes())] == [0, 1, 2, 3]
    assert os.stat(path).st_size > 0
