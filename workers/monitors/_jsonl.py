"""One writer per JSONL file: append-only, one `write(2)` per record, a lock against a second writer.

O_APPEND makes every write land at the end whatever else happened to the file, and the
file is never opened with O_TRUNC: a restarted monitor continues the same file. The
exclusive flock makes a second writer (two monitors given the same `out`) fail at open
instead of interleaving silently.
"""

import os
from pathlib import Path

import orjson

from common.fdio import write_all
from common.files import open_sole_writer
from common.jsonshape import JsonObject
from workers.child_args import MonitorArgs
from workers.runtime import ChildContext


class SecondWriterError(RuntimeError):
    pass


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = open_sole_writer(path, os.O_WRONLY | os.O_APPEND, SecondWriterError, "already has a writer")
        self.records = 0

    def write(self, record: JsonObject) -> None:
        write_all(self._fd, orjson.dumps(record, default=str) + b"\n")
        self.records += 1

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_monitor_output(ctx: ChildContext) -> JsonlWriter | None:
    """The monitor's file (`MonitorArgs.out`); None, logged, when it cannot be ours."""
    args: MonitorArgs = ctx.args
    try:
        return JsonlWriter(args.out)
    except (OSError, SecondWriterError) as exc:
        ctx.log.error("monitor_output_unusable", path=str(args.out), error=str(exc))
        return None
