"""Fixtures for stream tests: a loopback sshd, follower data files, record readers."""

import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from tests.helpers.forked_child import REPO_ROOT
from tests.helpers.sshd import Sshd
from workers.hosts import Role, VmHost
from workers.stream.backoff import Backoff
from workers.stream.spec import StreamSpec
from workers.transports import LocalTransport, Transport

FOLLOWER = REPO_ROOT / "tests" / "helpers" / "fake_follower.py"
SCHEMA = orjson.loads((REPO_ROOT / "docs" / "stream-record.schema.json").read_bytes())


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    try:
        yield server
    finally:
        server.stop()


def ts(i: int) -> bytes:
    """A distinct docker-style timestamp per sequence number, all within a few seconds."""
    seconds, micros = divmod(i, 1_000_000)
    return b"2024-05-01T12:00:%02d.%06d000Z" % (seconds, micros)


def seq_lines(start: int, stop: int) -> bytes:
    return b"".join(ts(i) + b" seq=%d payload\n" % i for i in range(start, stop))


# Reconnects within a test's patience.
FAST_BACKOFF = Backoff(base_s=0.05, cap_s=0.2, jitter=0.5)


def local_transport(state_dir: Path, *extra: str) -> LocalTransport:
    return LocalTransport(state_dir=str(state_dir), command_prefix=(sys.executable, str(FOLLOWER), *extra))


def stream_spec(
    transport: Transport, vm: str = "vm-1", container: str = "iris-worker", address: str = "", **options: Any
) -> StreamSpec:
    """The stream child's arguments for one single-host worker VM, as the supervisor builds them."""
    return StreamSpec(VmHost(vm, 0, Role.WORKER, address or vm), container, transport, **options)


def follower_template(state_dir: Path, *extra: str) -> str:
    """A remote template running the fake follower (under sshd) like `docker logs`."""
    base = [sys.executable, str(FOLLOWER), "--state-dir", str(state_dir), "-f", "--timestamps", *extra]
    return " ".join(shlex.quote(part) for part in base) + " {since} {container}"


def read_records(path: Path) -> list[dict[str, object]]:
    """The complete records in `path`. A stream child may be appending while a test reads: the
    last line, until its newline lands, is a record still being written, not a record."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    return [orjson.loads(line) for line in complete.splitlines()]


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def validate(records: list[dict[str, object]]) -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for record in records:
        validator.validate(record)
