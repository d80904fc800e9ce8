"""Cutting a byte stream into lines without ever holding more than one line plus one chunk.

Whatever the VM sends (a 50 MB line, no newline at all), the framer keeps at most
`max_line_bytes` of an unfinished line. A longer line is cut: its first `max_line_bytes`
are emitted at once, flagged truncated, and the rest is dropped as it arrives, up to and
including the next newline. Lengths exclude the newline.

Output is a list of segments in stream order: a run of complete lines (`bytes` ending in
"\n", every line within the limit), or one truncated line (no newline). The common case
is a single run per chunk (the line an earlier chunk left unfinished included), which
the encoder turns into records in bulk.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Segment:
    data: bytes
    truncated: bool = False


class LineFramer:
    def __init__(self, max_line_bytes: int) -> None:
        self.max = max_line_bytes
        self._partial = b""
        self._discarding = False

    @property
    def pending_bytes(self) -> int:
        return len(self._partial)

    @property
    def discarding(self) -> bool:
        """Inside an over-long line: what arrives until its newline is dropped."""
        return self._discarding

    def feed(self, chunk: bytes) -> list[Segment]:
        out: list[Segment] = []
        start = 0
        if self._discarding:
            start = chunk.find(b"\n") + 1
            if not start:
                return out
            self._discarding = False
        end = chunk.rfind(b"\n", start) + 1
        if not end:
            self._keep_tail(self._partial + chunk[start:], out)
            return out
        if self._partial:
            first = chunk.find(b"\n", start)
            if len(self._partial) + first - start > self.max:
                room = self.max - len(self._partial)
                out.append(Segment(self._partial + chunk[start : start + room], truncated=True))
                self._partial = b""
                start = first + 1
        # The line finished here joins the run: one copy of the chunk, instead of a segment
        # of its own, an encoder call more and a join of the encoded output. Without one,
        # the slice is the chunk itself (no copy) when the chunk is all complete lines.
        block = b"".join((self._partial, memoryview(chunk)[start:end])) if self._partial else chunk[start:end]
        if block:
            out.extend(split_long_lines(block, self.max))
        self._keep_tail(chunk[end:], out)
        return out

    def _keep_tail(self, tail: bytes, out: list[Segment]) -> None:
        if len(tail) > self.max:
            out.append(Segment(tail[: self.max], truncated=True))
            self._partial = b""
            self._discarding = True
        else:
            self._partial = tail


def split_long_lines(block: bytes, max_line: int) -> list[Segment]:
    """Split a run of complete lines around any line longer than `max_line`.

    No per-line work: from a line start, a newline within the next `max_line + 1` bytes
    proves every line up to it short enough, so we jump there (rfind is a memrchr); a
    window without a newline is a long line. A block of short lines costs about
    len(block) / max_line searches.
    """
    out: list[Segment] = []
    start = pos = 0
    size = len(block)
    while size - pos > max_line + 1:
        newline = block.rfind(b"\n", pos, pos + max_line + 1)
        if newline >= 0:
            pos = newline + 1
            continue
        end = block.find(b"\n", pos)
        if pos > start:
            out.append(Segment(block[start:pos]))
        out.append(Segment(block[pos : pos + max_line], truncated=True))
        start = pos = end + 1
    if start < size:
        out.append(Segment(block[start:] if start else block))
    return out
