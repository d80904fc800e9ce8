"""Cursor markers, the cursor sidecar and resume by cursor (in-process, no follower)."""

from pathlib import Path

import pytest

from tests.streams.conftest import seq_lines, ts
from tests.streams.test_records import RECEIVED, encoder, feed, records
from workers.stream import cursor
from workers.stream.cursor import CursorMark, Marker, parse_marker, split_markers
from workers.stream.framing import LineFramer
from workers.stream.records import RecordEncoder, ResumeBy, Resumed, ResumeOutcome


def marker_encoder() -> RecordEncoder:
    enc = encoder()
    enc.cursor_markers = True
    return enc


@pytest.mark.parametrize(
    ("run", "pieces"),
    [
        (b"a\nb\n", [b"a\nb\n"]),
        (b"#cursor 5\n", [b"#cursor 5\n"]),
        (b"a\n#cursor 5\nb\n", [b"a\n", b"#cursor 5\n", b"b\n"]),
        (b"#cursor 5\na\n#cursor 6\n", [b"#cursor 5\n", b"a\n", b"#cursor 6\n"]),
        (b"a #not a marker\n", [b"a #not a marker\n"]),
    ],
)
def test_a_run_is_cut_around_its_marker_lines(run: bytes, pieces: list[bytes]) -> None:
    assert split_markers(run) == pieces


def test_markers_are_parsed_strictly() -> None:
    assert parse_marker(b"#cursor 42\n") == Marker(42, False)
    assert parse_marker(b"#cursor-unknown 42\n") == Marker(42, True)
    for bad in (b"#cursor 0\n", b"#cursor -1\n", b"#cursor 4x\n", b"#cursors 4\n", b"#cursor 4"):
        assert parse_marker(bad) is None


def test_a_mark_notes_the_records_before_it_and_where_the_output_covers_it() -> None:
    enc = marker_encoder()
    head = seq_lines(0, 3)
    data = head + b"#cursor 17\n" + seq_lines(3, 5) + b"#cursor 20\n"
    out = enc.encode(LineFramer(65536).feed(data), RECEIVED)
    assert [r["seq"] for r in records(out)] == list(range(5))
    first_end = len(b"".join(out.splitlines(keepends=True)[:3]))
    assert enc.marks == [
        (first_end, CursorMark(17, 3, ts(2).decode())),
        (len(out), CursorMark(20, 5, ts(4).decode())),
    ]


def test_a_resume_by_cursor_drops_the_lines_already_written_and_is_exact() -> None:
    enc = marker_encoder()
    feed(enc, seq_lines(0, 5))
    enc.start_resume(skip=2)  # the mark was at 3 records: lines 3 and 4 come again
    out = feed(enc, seq_lines(3, 8) + b"#cursor 30\n")
    assert [r["line"] for r in out] == [f"seq={i} payload" for i in (5, 6, 7)]
    assert enc.resumes == [Resumed(ResumeOutcome.EXACT, ts(4).decode(), 4, ts(5).decode(), 5, 2, ResumeBy.CURSOR)]
    assert enc.counters.gaps == 0 and enc.resume is None
    assert [mark for _, mark in enc.marks] == [CursorMark(30, 8, ts(7).decode())]


def test_a_mark_during_an_open_resume_is_not_kept() -> None:
    enc = marker_encoder()
    feed(enc, seq_lines(0, 5))
    enc.start_resume(skip=2)
    feed(enc, seq_lines(3, 4) + b"#cursor 30\n")  # one of the two lines to skip, then a mark
    assert enc.marks == [] and enc.resume is not None


def test_a_cursor_the_store_lost_is_a_gap_and_the_since_replay_is_deduped() -> None:
    enc = marker_encoder()
    feed(enc, seq_lines(0, 5))
    enc.start_resume(skip=0)
    out = feed(enc, b"#cursor-unknown 9\n" + seq_lines(4, 7))
    assert [r["line"] for r in out] == ["seq=5 payload", "seq=6 payload"]
    [gap] = enc.resumes
    assert gap == Resumed(ResumeOutcome.CURSOR_UNKNOWN, ts(4).decode(), 4, ts(5).decode(), 5, 1, ResumeBy.CURSOR)
    assert gap.gap and enc.counters.gaps == 1 and enc.cursor_lost


def test_the_sidecar_is_used_only_when_it_fits_the_file(tmp_path: Path) -> None:
    path = cursor.sidecar_path(tmp_path / "vm.jsonl")
    assert path.name == "vm.jsonl.cursor"
    assert cursor.load(path, 5, ts(4).decode()) is None  # missing
    mark = CursorMark(17, 5, ts(4).decode())
    cursor.save(path, mark)
    assert cursor.load(path, 5, ts(4).decode()) == mark
    assert cursor.load(path, 7, ts(6).decode()) == mark  # two records after it: skipped on resume
    assert cursor.load(path, 4, ts(3).decode()) is None  # ahead of the file
    assert cursor.load(path, 5, ts(5).decode()) is None  # not the file's last record
    for bad in (b"{", b"[]", b'{"cursor": 0, "next_seq": 5, "ts": "x"}', b'{"cursor": 17, "next_seq": 5}'):
        path.write_bytes(bad)
        assert cursor.load(path, 5, ts(4).decode()) is None
    cursor.discard(path)
    cursor.discard(path)
    assert not path.exists()
