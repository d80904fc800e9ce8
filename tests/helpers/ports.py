"""Lose the race `common.ports.free_port` warns about, on demand."""

import contextlib
import socket
from collections.abc import Iterator

import pytest

from common import ports


@contextlib.contextmanager
def first_free_port_taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The next `ports.free_port()` answers a port another socket listens on (until the block
    ends); later answers are fresh. Yields the taken port."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken: int = squatter.getsockname()[1]
        picks = iter([taken])
        fresh = ports.free_port
        monkeypatch.setattr(ports, "free_port", lambda: next(picks, None) or fresh())
        yield taken
