"""The stream child's arguments: built by the supervisor, validated on construction.

The supervisor builds a `StreamSpec` (and its transport) before the fork and the child
receives the object itself. Names are checked here (HostileNameError, via `VmHost` and
`validate_name`) so that nothing unvalidated reaches a command line; the transports
check again where they build one.
"""

from dataclasses import dataclass, field
from pathlib import Path

from workers.hosts import VmHost, validate_name
from workers.stream.backoff import Backoff
from workers.transports import Transport

MAX_LINE_BYTES = 64 * 1024
STALE_AFTER_S = 300.0
PROGRESS_INTERVAL_S = 5.0
FSYNC_INTERVAL_S = 30.0
# A pipe holds at most 1 MiB (fs.pipe-max-size); reading that much at once keeps the
# number of system calls and batches per megabyte low.
READ_CHUNK_BYTES = 1 << 20
MIN_LINE_BYTES = 64
# Without a cap from the supervisor (tests, tools): unbounded in practice.
MAX_BYTES = 1 << 62


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class StreamSpec:
    host: VmHost
    container: str
    transport: Transport
    # None: the host's own file; a relative path is relative to the run directory.
    output: Path | None = None
    max_line_bytes: int = MAX_LINE_BYTES
    max_bytes: int = MAX_BYTES
    stale_after_s: float = STALE_AFTER_S
    progress_interval_s: float = PROGRESS_INTERVAL_S
    fsync_interval_s: float = FSYNC_INTERVAL_S
    read_chunk_bytes: int = READ_CHUNK_BYTES
    # The settings; each child mutates its own copy (`new_backoff`).
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        validate_name("container", self.container)
        for name in ("max_line_bytes", "max_bytes", "stale_after_s", "progress_interval_s", "fsync_interval_s",
                     "read_chunk_bytes"):  # fmt: skip
            _positive(name, getattr(self, name))
        if self.max_line_bytes < MIN_LINE_BYTES:
            raise SpecError(f"max_line_bytes must be at least {MIN_LINE_BYTES}")
        for name in ("base_s", "cap_s", "reset_after_s"):
            _positive(f"backoff.{name}", getattr(self.backoff, name))
        if not 0 <= self.backoff.jitter <= 1:
            raise SpecError(f"backoff.jitter must be between 0 and 1, got {self.backoff.jitter!r}")

    def output_path(self, run_dir: Path) -> Path:
        output = self.output or Path(self.host.log_path)
        return output if output.is_absolute() else run_dir / output

    def new_backoff(self) -> Backoff:
        return Backoff(self.backoff.base_s, self.backoff.cap_s, self.backoff.jitter, self.backoff.reset_after_s)


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise SpecError(f"{name} must be a positive number, got {value!r}")
