"""Structured JSON logs for every process of a run.

Each process calls `configure()` once (a forked child again, right after the fork, so
its pid and sinks are its own). Every event becomes one JSON object on one line, written
to stdout (journald reads it) and appended to `<run_dir>/events.jsonl`.

Why lines are never interleaved or cut, although many processes write concurrently:
- each line is exactly one `write(2)` on a file descriptor opened with O_APPEND; on a
  local filesystem Linux holds the inode lock for the whole write, so two appends never
  mix;
- a write of at most PIPE_BUF (4096) bytes to a pipe is atomic, so lines are capped at
  that size on every sink (long string fields are shortened and listed in `truncated`).
A sink that fails (disk full, stdout closed) is reported once on stderr and then skipped;
logging never raises into the code that logs.

Secrets: a process that reads a credential registers it (`redact`), and from then on every
string of every event (messages, fields, a formatted traceback) has it replaced by
`<redacted>` before any sink sees it: a token that ends up in an exception message (a
two-line token file makes the HTTP library reject the header, quoting it) reaches no log.

Levels: `level` (`--log-level`) filters stdout only. `events.jsonl` always gets info and
above (debug too when asked for), so a quiet console never means an empty record. When
stdout is journald's stream (`$JOURNAL_STREAM` names its device and inode), each stdout
line starts with the sd-daemon priority `<N>`, so `journalctl -p warning` finds failures.
"""

import enum
import logging
import os
import select
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from common import ecs
from common.fdio import write_all

MAX_LINE_BYTES = select.PIPE_BUF
# Room for a journald priority prefix ("<4>") in front of a line already capped.
_PREFIX_ROOM = 4
_FIELD_KEEP_CHARS = 256
REDACTED = "<redacted>"
# Shorter strings are not registered as secrets: redacting "ab" would mangle every event.
MIN_SECRET_CHARS = 8

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# sd-daemon(3) priorities, by structlog's level names.
_PRIORITY = {"debug": b"<7>", "info": b"<6>", "warning": b"<4>", "error": b"<3>", "critical": b"<2>"}
_NUMERIC = LEVELS | {"critical": logging.CRITICAL}

EventDict = MutableMapping[str, Any]


class _Sink:
    """One destination: a file descriptor, and whether it still works."""

    def __init__(self, fd: int, name: str, owned: bool) -> None:
        self.fd = fd
        self.name = name
        self.owned = owned
        self.failed = False

    def write(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            write_all(self.fd, data)
        except OSError as exc:
            self.failed = True
            # stderr, not the log: the log is what just failed.
            os.write(2, orjson.dumps({"event": "log_sink_failed", "sink": self.name, "error": str(exc)}) + b"\n")

    def close(self) -> None:
        if self.owned:
            os.close(self.fd)


def _cap_line(event: EventDict) -> bytes:
    limit = MAX_LINE_BYTES - _PREFIX_ROOM
    line = orjson.dumps(event, default=str)
    if len(line) < limit:
        return line + b"\n"
    truncated = []
    for key, value in event.items():
        if isinstance(value, str) and len(value) > _FIELD_KEEP_CHARS:
            event[key] = value[:_FIELD_KEEP_CHARS] + "…"
            truncated.append(key)
        elif isinstance(value, dict | list | tuple) and key not in _RESERVED:
            event[key] = repr(value)[:_FIELD_KEEP_CHARS] + "…"
            truncated.append(key)
    event["truncated"] = truncated
    line = orjson.dumps(event, default=str)
    if len(line) >= limit:
        line = orjson.dumps({k: event[k] for k in _RESERVED if k in event} | {"truncated": ["*"]})
    return line + b"\n"


_RESERVED = (
    "timestamp", "level", "event", "run_id", "pid", "role", "child",
    # their ECS names, so a last-resort line on an ECS stdout keeps them too
    "@timestamp", "log.level", "message", "event.action", "process.pid", "labels.run_id", "labels.role",
)  # fmt: skip


class _Writer:
    """The structlog 'logger': receives the finished event dict and writes it to every sink."""

    def __init__(self, sinks: list[_Sink], mode: "StdoutMode", stdout_level: int, journal: bool) -> None:
        self._sinks = sinks
        self._mode = mode
        self._journal = journal
        # The console mode a terminal chose shows warnings only: the progress line is there.
        quiet = logging.WARNING if mode is StdoutMode.QUIET_CONSOLE else logging.DEBUG
        self._stdout_level = max(stdout_level, quiet)
        wants_console = mode in (StdoutMode.CONSOLE, StdoutMode.QUIET_CONSOLE)
        self._console = structlog.dev.ConsoleRenderer(colors=False) if wants_console else None

    def _emit(self, **event: Any) -> None:
        line = _cap_line(event)
        for sink in self._sinks[1:]:
            sink.write(line)
        level = event.get("level", "info")
        if _NUMERIC.get(level, logging.INFO) < self._stdout_level:
            return
        prefix = _PRIORITY.get(level, b"<6>") if self._journal else b""
        self._sinks[0].write(prefix + self._stdout_line(event, line))

    def _stdout_line(self, event: EventDict, line: bytes) -> bytes:
        if self._mode is StdoutMode.ECS:
            # events.jsonl keeps our names (the schema); only stdout speaks ECS.
            return _cap_line(ecs.to_ecs(event))
        if self._console is not None:
            text = self._console(None, "", dict(event))
            # Under the progress line (supervisor/progress.py): erase it first, so the
            # warning starts at the margin and leaves no half of the line behind it.
            erase = b"\r\x1b[K" if self._mode is StdoutMode.QUIET_CONSOLE else b""
            return erase + str(text).encode("utf-8", "backslashreplace")[: MAX_LINE_BYTES - _PREFIX_ROOM - 4] + b"\n"
        return line

    msg = debug = info = warning = warn = error = critical = exception = fatal = _emit

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()


@dataclass
class _State:
    """What differs between processes: where lines go and the fields that name the process.

    structlog's pipeline is configured once per interpreter and reads this state on every
    event, so a forked child only swaps the state: rebuilding structlog's configuration
    in each child copied about 0.3 MiB of the parent's pages per child.
    """

    writer: _Writer | None = None
    fields: dict[str, object] = field(default_factory=dict)
    level: int | None = None  # the level structlog's pipeline was built for
    secrets: set[str] = field(default_factory=set)  # what no sink may ever see (redact())


_state = _State()


def forget_after_fork() -> None:
    """Drop the parent's writer without closing its descriptors (the child closes them all)."""
    _state.writer = None


def _static_fields(_logger: Any, _name: str, event: EventDict) -> EventDict:
    # run_id, pid and role always describe the emitting process and cannot be overridden;
    # an event about another process names it `child_pid`. `child` may be rebound: the
    # supervisor binds it to the child an event is about.
    fields = _state.fields
    child = event.get("child", fields.get("child"))
    event.update(fields)
    if child is not None:
        event["child"] = child
    return event


def redact(secret: str) -> None:
    """From now on, this process's logs show `secret` (and each of its lines) as <redacted>."""
    for part in {secret.strip(), *secret.splitlines()}:
        if len(part.strip()) >= MIN_SECRET_CHARS:
            _state.secrets.add(part.strip())


def redacted(text: str) -> str:
    """`text` with every registered secret replaced; for what a process prints outside its log."""
    for secret in _state.secrets:
        text = text.replace(secret, REDACTED)
    return text


def scrubbed(value: Any) -> Any:
    """`value` (a string, or lists and dicts of them) with every registered secret replaced."""
    if isinstance(value, str):
        return redacted(value)
    if isinstance(value, dict):
        return {k: scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrubbed(v) for v in value]
    return value


def _redact_secrets(_logger: Any, _name: str, event: EventDict) -> EventDict:
    # Last in the pipeline, after the traceback is formatted into a string.
    if not _state.secrets:
        return event
    for key, value in event.items():
        event[key] = scrubbed(value)
    return event


def _current_writer(*_args: Any) -> _Writer | None:
    return _state.writer


class StdoutMode(enum.Enum):
    JSON = "json"  # journald, a pipe, a file: every event as a JSON line
    ECS = "ecs"  # the same, with Elastic Common Schema field names (common/ecs.py)
    CONSOLE = "console"  # every event, rendered for people
    # A terminal left to choose: warnings and errors only, because the supervisor draws
    # its live progress line there; events.jsonl still gets everything.
    QUIET_CONSOLE = "quiet-console"


def stdout_mode(fmt: str = "auto") -> StdoutMode:
    if fmt == "auto":
        fmt = os.environ.get("IRIS_SMOKE_LOG_FORMAT", "auto")
    if fmt == "auto":
        return StdoutMode.QUIET_CONSOLE if sys.stdout.isatty() else StdoutMode.JSON
    return StdoutMode(fmt)


def outcome_level(outcome: str) -> int:
    """The level of an event that reports an outcome: a pass is news, a failure a warning, an error an error."""
    return {"passed": logging.INFO, "error": logging.ERROR}.get(outcome, logging.WARNING)


def journal_stdout(fd: int) -> bool:
    """Is `fd` the stream journald gave us? Compared by device and inode, as sd_journal_stream_fd(3)
    advises, so a child whose stdout was redirected elsewhere does not add prefixes."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def configure(
    role: str,
    run_id: str | None = None,
    events_path: Path | None = None,
    *,
    child: str | None = None,
    level: str = "info",
    stdout_format: str = "auto",
    stdout_fd: int = 1,
) -> None:
    """Configure this process's logging; call again after a fork to take over the sinks."""
    if _state.writer is not None:
        _state.writer.close()
    sinks = [_Sink(stdout_fd, "stdout", owned=False)]
    if events_path is not None:
        fd = os.open(events_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        sinks.append(_Sink(fd, str(events_path), owned=True))
    _state.writer = _Writer(sinks, stdout_mode(stdout_format), LEVELS[level], journal_stdout(stdout_fd))
    _state.fields = {"run_id": run_id, "pid": os.getpid(), "role": role}
    if child is not None:
        _state.fields["child"] = child
    # The pipeline keeps what events.jsonl needs; the writer filters stdout by `level`.
    kept = min(LEVELS[level], logging.INFO)
    if _state.level == kept:
        return
    _state.level = kept
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            _static_fields,
            structlog.processors.format_exc_info,
            _redact_secrets,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(kept),
        logger_factory=_current_writer,
        # Not cached: a logger used before a fork must reach the child's writer after it.
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger().bind(**bound)
