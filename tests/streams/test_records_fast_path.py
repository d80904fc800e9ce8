"""The fast path (`records.encode_run`) against the per-line slow path, its reference.

The contract is byte-for-byte equality with what the slow path writes for the same run,
or None (the run then takes the slow path), so the inputs here mix what the fast path
takes (ASCII, UTF-8 of every length, quotes, backslashes, control characters, '%') with
what it must refuse (invalid UTF-8, DEL, timestamps that are not the fixed form).
"""

import random

import pytest

from tests.streams.conftest import seq_lines, ts
from workers.stream import records
from workers.stream.framing import LineFramer, Segment
from workers.stream.records import RecordEncoder, encode_run

HEAD = b'"received":"2024-05-01T13:00:00.000000000Z","run_id":"run-1","vm":"vm-1","host":0,"role":"worker"'
GOOD_TS = b"2024-05-01T12:00:00.123456789Z"

# Pieces of line text the fast path accepts.
ASCII = [bytes([c]) for c in range(0x20, 0x7F)]
CONTROLS = [bytes([c]) for c in range(0x20) if c != 0x0A]
UTF8 = ["é", "ß", "€", "漢", "\u2028", "\ud7ff", "\ue000", "\uffff", "😀", "\U00010000", "\U0010ffff"]
SPECIAL = [b'"', b"\\", b"%", b"%s", b"%d", b"\t", b"\r", b"Z ", b"\\u0000"]
# Bytes that make a run irregular: the fast path must refuse it.
INVALID_UTF8 = [
    b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
    b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3\x28",
]  # fmt: skip
BAD_PREFIXES = [
    b"2024-05-01T12:00:00.123Z ", b"2024-05-01T12:00:00Z ", b"2024-05-01T12:00:00.123456789+00:00 ",
    b"2024-05-01T12:00:00.123456789Z", b"2024-05-01T12:00:00.123456789z ", b"2024-05-01 12:00:00.123456789Z ",
    b"2024-05-01T12:00:00.12345678xZ ", b"2024-05-01T12:00:00,123456789Z ", b"", b"no timestamp ",
    b"\xd9\xa2024-05-01T12:00:00.123456789Z ", b"2024-05-01T12:00:00.123456789Z\t",
]  # fmt: skip


def per_line(run: bytes, head: bytes = HEAD, seq: int = 0) -> bytes:
    """The reference: the slow path, one line at a time."""
    enc = RecordEncoder("run-1", "vm-1", 0, "worker", "iris-worker", next_seq=seq)
    return enc._slow_run(run, head)


def assert_same(run: bytes, seq: int = 0, head: bytes = HEAD) -> tuple[bytes, int] | None:
    result = encode_run(run, head, seq)
    assert result is not None, run
    assert result[0] == per_line(run, head, seq)
    return result


def random_text(rnd: random.Random, pieces: list[bytes], length: int) -> bytes:
    return b"".join(rnd.choice(pieces) for _ in range(length))


def random_ts(rnd: random.Random) -> bytes:
    digits = "".join(rnd.choice("0123456789") for _ in range(9))
    return b"%04d-%02d-%02dT%02d:%02d:%02d.%sZ" % (
        rnd.randrange(10000), rnd.randrange(100), rnd.randrange(100), rnd.randrange(100),
        rnd.randrange(100), rnd.randrange(100), digits.encode(),
    )  # fmt: skip


def test_regular_runs_are_identical_to_the_per_line_reference() -> None:
    rnd = random.Random(20240501)
    utf8 = [c.encode() for c in UTF8]
    alphabets = [ASCII, ASCII + SPECIAL, CONTROLS + SPECIAL, utf8, ASCII + CONTROLS + SPECIAL + utf8]
    for _ in range(2000):
        alphabet = rnd.choice(alphabets)
        lines = [
            random_ts(rnd) + b" " + random_text(rnd, alphabet, rnd.choice([0, 1, 2, 7, 8, 9, 30, 200])) + b"\n"
            for _ in range(rnd.randint(1, 12))
        ]
        seq = rnd.choice([0, 1, 9, 95, 99, 999_999, 10**16 - 5, rnd.randrange(10**9)])
        head = rnd.choice([HEAD, b'"received":"%d %s"', b'"vm":"\\"x\\""', b""])
        result = assert_same(b"".join(lines), seq, head)
        assert result is not None and result[1] == len(lines)


def test_irregular_runs_are_refused_and_written_by_the_reference() -> None:
    rnd = random.Random(7)
    breakers = [*INVALID_UTF8, b"\x7f"]
    for _ in range(2000):
        lines = [GOOD_TS + b" " + random_text(rnd, ASCII, rnd.randint(0, 40)) + b"\n" for _ in range(rnd.randint(1, 6))]
        i = rnd.randrange(len(lines))
        if rnd.random() < 0.5:
            text = lines[i][len(GOOD_TS) + 1 : -1]
            cut = rnd.randint(0, len(text))
            lines[i] = GOOD_TS + b" " + text[:cut] + rnd.choice(breakers) + text[cut:] + b"\n"
        else:
            lines[i] = rnd.choice(BAD_PREFIXES) + b"x" + lines[i][len(GOOD_TS) + 1 :]  # x: no space after it
        run = b"".join(lines)
        assert encode_run(run, HEAD, 0) is None
        enc = RecordEncoder("run-1", "vm-1", 0, "worker", "iris-worker")
        assert enc.encode([Segment(run)], "r") == per_line(run, enc._head("r"))


@pytest.mark.parametrize("run", [b"", b"\n"])
def test_empty_runs_are_refused(run: bytes) -> None:
    assert encode_run(run, HEAD, 0) is None


def test_seq_digits_roll_over_inside_a_run() -> None:
    run = seq_lines(0, 25)
    for seq in [0, 1, 5, 9, 90, 99, 995, 10**6 - 3, 10**16 - 10]:
        assert assert_same(run, seq) is not None


def test_every_escape_matches_the_reference() -> None:
    for c in [*range(0x20), 0x22, 0x5C, *range(0x20, 0x7F)]:
        if c != 0x0A:
            assert assert_same(GOOD_TS + b" <" + bytes([c]) * 9 + b">\n") is not None


def test_a_large_chunk_gives_one_file_with_or_without_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole RecordEncoder (framing, runs, dedupe tail) gives one file either way."""
    rnd = random.Random(3)
    words = [b"alpha", b'"dq"', b"\\", b"\t", "é".encode(), "😀".encode(), b"%s", b"x" * 70]
    lines = [
        ts(i) + b" " + b" ".join(rnd.choice(words) for _ in range(rnd.randint(0, 12))) + b"\n" for i in range(20000)
    ]
    lines[5000] = b"untimestamped\n"  # one irregular chunk goes the slow way
    data = b"".join(lines)
    chunks = [data[i : i + 65536 + 17] for i in range(0, len(data), 65536 + 17)]

    def run_all() -> tuple[bytes, int, str | None]:
        enc, framer = RecordEncoder("run-1", "vm-1", 0, "worker", "iris-worker"), LineFramer(1000)
        out = b"".join(enc.encode(framer.feed(chunk), "2024-05-01T13:00:00.000000000Z") for chunk in chunks)
        return out, enc.next_seq, enc.last_ts

    with_fast_path = run_all()
    monkeypatch.setattr(records, "encode_run", lambda run, head, seq: None)
    assert run_all() == with_fast_path
    assert with_fast_path[1] == 19999
