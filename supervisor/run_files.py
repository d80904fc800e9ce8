"""Reading a run directory back (`show`, `report`), every file of it as untrusted input.

A run directory may be a copied CI artefact, or sit in a log directory others can write:
its files can be anything. So each file is opened without following a symlink and without
blocking (O_NOFOLLOW|O_NONBLOCK: opening a FIFO for reading would wait for a writer, and
reading it would wait for ever), must then be a regular file (fstat: /dev/zero or a FIFO
is refused before a byte is read), and is read with a cap. Whatever is wrong (a link, a
device, too big, not JSON, a value of the wrong type) is a `RunDirError`: one line naming
the file and what is wrong, exit 2.

Shapes are checked with the accessor that reads controller replies (`FileField`, a
`Field` whose wrong shape is a RunDirError): `results.json: tests[] is a string, expected
an object`.
"""

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import orjson

from workers.controller.reply import Field

# Real results.json files are KiB to a few MiB (log tails are capped); far beyond, not ours.
RESULTS_MAX_BYTES = 64 << 20
# A monitor snapshot of 100,000 tasks is about 15 MB on one line.
JSONL_MAX_LINE_BYTES = 32 << 20
# Lines that do not parse are skipped (a writer killed mid-record tears one), a few only:
# more is not a run's file, and reading on would read a file of garbage to its end.
JSONL_MAX_TORN_LINES = 8


class RunDirError(Exception):
    """No usable run there: the message names the file and what is wrong (or what to give instead)."""


class FileField(Field):
    """A value of a file read back (`method` is the file's name): a wrong shape is a RunDirError."""

    __slots__ = ()
    whole = "the file"

    def error(self, path: str, message: str) -> RunDirError:
        return RunDirError(message)

    def as_count(self) -> int:
        """A JSON integer >= 0 (absent is 0): never a string of digits, a boolean or a fraction."""
        if not self.present:
            return 0
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < 0:
            raise self.mismatch("a whole number >= 0")
        return self.value

    def as_text(self) -> str:
        """A string, number or boolean as text (absent is empty): names and ids, however a writer spelled them."""
        return self.as_scalar_text() if self.present else ""

    def as_number(self) -> float | None:
        """A JSON number (absent is None): never a string."""
        if not self.present:
            return None
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise self.mismatch("a number")
        return float(self.value)


class RecordField(FileField):
    """One record (line) of a JSONL file: `events.jsonl line 3: phase is a list, ...`."""

    __slots__ = ()
    whole = "the record"


def open_regular(path: Path) -> IO[bytes] | None:
    """`path` opened for reading if it is a regular file; None if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunDirError(f"{path}: is a symlink; a run directory holds plain files") from None
        raise RunDirError(f"{path}: cannot read ({exc.strerror})") from None
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise RunDirError(f"{path}: not a regular file (a FIFO, a device or a directory)")
    return handle


def read_json(path: Path, max_bytes: int) -> FileField | None:
    """The JSON value in `path`, read whole up to `max_bytes`; None if there is no such file."""
    handle = open_regular(path)
    if handle is None:
        return None
    with handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RunDirError(f"{path}: larger than {max_bytes >> 20} MiB; not a run's file")
    try:
        return FileField(path.name, "", orjson.loads(data))
    except orjson.JSONDecodeError:
        raise RunDirError(f"{path}: not JSON; the run may still be going") from None


def jsonl_records(path: Path) -> Iterator[RecordField]:
    """Each record of a JSONL file as a RecordField (`scheduling.jsonl line 3`); a missing file has none.

    Read a line at a time, each at most JSONL_MAX_LINE_BYTES, so memory stays bounded by
    what the caller keeps, whatever the file's size.
    """
    handle = open_regular(path)
    if handle is None:
        return
    torn = 0
    with handle:
        for number, line in enumerate(iter(lambda: handle.readline(JSONL_MAX_LINE_BYTES + 1), b""), 1):
            if len(line) > JSONL_MAX_LINE_BYTES:
                raise RunDirError(f"{path}: line {number} longer than {JSONL_MAX_LINE_BYTES >> 20} MiB")
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                torn += 1
                if torn > JSONL_MAX_TORN_LINES:
                    raise RunDirError(f"{path}: more than {JSONL_MAX_TORN_LINES} lines are not JSON") from None
                continue
            record = RecordField(f"{path.name} line {number}", "", value)
            if not record.is_object:
                raise record.mismatch("an object")
            yield record


def latest_run(log_dir: Path) -> Path | None:
    """The run directory under `log_dir` whose results.json is newest, symlinks ignored.

    A log directory may be shared: a run directory that is a symlink, or a results.json
    that is one, could point anywhere (another user's files, /dev/zero) and is never a run.
    """
    newest: tuple[float, Path] | None = None
    try:
        entries = list(os.scandir(log_dir))
    except OSError:
        return None
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        try:
            st = os.lstat(Path(entry.path) / "results.json")
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and (newest is None or st.st_mtime > newest[0]):
            newest = (st.st_mtime, Path(entry.path))
    return newest[1] if newest else None
