"""The children's message pipes: one per child, all in the supervisor's one loop.

Reads never block (the read ends are non-blocking) and a message split across reads is
reassembled by the child's `MessageReader`. When a child has exited, what it left in
the pipe (its final stats, typically) is read before the pipe is closed: its write end
closed with the child, since it is not inheritable, so the read ends at EOF.
"""

import os
from collections.abc import Iterator
from typing import Any

from common.messages import Message
from supervisor.children import ChildRecord
from supervisor.loop import FdHandler, Loop

READ_BYTES = 65536


class ChildPipes:
    def __init__(self, loop: Loop, on_readable: FdHandler, log: Any) -> None:
        self._loop = loop
        self._on_readable = on_readable
        self._log = log
        self._by_fd: dict[int, ChildRecord] = {}

    def __contains__(self, fd: int) -> bool:
        return fd in self._by_fd

    def attach(self, record: ChildRecord, fd: int) -> None:
        record.fd = fd
        self._by_fd[fd] = record
        self._loop.register(fd, self._on_readable)

    def read(self, fd: int) -> Iterator[tuple[ChildRecord, Message]]:
        """The complete messages that one readable pipe holds now (its EOF closes it)."""
        record = self._by_fd[fd]
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            return
        if not data:
            self.close(record)
            return
        yield from self._decode(record, data)

    def read_remaining(self, record: ChildRecord) -> Iterator[tuple[ChildRecord, Message]]:
        """After the child exited: everything left in its pipe, then close it.

        BlockingIOError instead of EOF would mean another process still holds the write
        end; we stop there rather than wait for it.
        """
        while record.fd is not None:
            try:
                data = os.read(record.fd, READ_BYTES)
            except BlockingIOError:
                break
            if not data:
                break
            yield from self._decode(record, data)
        self.close(record)

    def _decode(self, record: ChildRecord, data: bytes) -> Iterator[tuple[ChildRecord, Message]]:
        messages = record.reader.feed(data)
        self._report_dropped(record)
        for message in messages:
            yield record, message

    def _report_dropped(self, record: ChildRecord, at_end: bool = False) -> None:
        # An over-long or garbled line is dropped alone, said once; the pipe, the child
        # and the other lines of the same read carry on.
        for dropped in record.reader.take_dropped(at_end):
            self._log.error(
                "message_dropped", child=record.name, reason=dropped.reason, message_bytes=dropped.size,
                head=dropped.head, error=dropped.error,
            )  # fmt: skip

    def close(self, record: ChildRecord) -> None:
        if record.fd is not None:
            self._report_dropped(record, at_end=True)
            self._loop.unregister(record.fd)
            del self._by_fd[record.fd]
            os.close(record.fd)
            record.fd = None

    def close_all(self) -> None:
        for record in list(self._by_fd.values()):
            self.close(record)
