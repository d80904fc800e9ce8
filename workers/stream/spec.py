"""The stream child's arguments, validated before anything runs.

`ctx.args` is a plain mapping (the supervisor captures it before the fork):

    vm, host (int), role ("controller"|"worker"), address, zone, hosts_in_vm,
    container, transport {kind: local|ssh|gcloud_vm|gcloud_tpu|iris_log, ...options},
    output (path; default the host's file under the run directory; relative paths are
    relative to it), max_line_bytes, max_bytes (the file's cap), stale_after_s, progress_interval_s,
    fsync_interval_s, read_chunk_bytes, backoff {base_s, cap_s, jitter, reset_after_s}

Names are checked here (HostileNameError) so that nothing unvalidated reaches a
command line; the transports check again where they build one.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.hosts import Role, VmHost, validate_name
from workers.stream.backoff import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    BACKOFF_JITTER,
    BACKOFF_RESET_AFTER_S,
    Backoff,
)
from workers.transports import Transport, transport_from_args

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
BACKOFF_FIELDS = frozenset({"base_s", "cap_s", "jitter", "reset_after_s"})


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class StreamSpec:
    host: VmHost
    container: str
    transport: Transport
    output: Path
    max_line_bytes: int = MAX_LINE_BYTES
    max_bytes: int = MAX_BYTES
    stale_after_s: float = STALE_AFTER_S
    progress_interval_s: float = PROGRESS_INTERVAL_S
    fsync_interval_s: float = FSYNC_INTERVAL_S
    read_chunk_bytes: int = READ_CHUNK_BYTES

    def backoff(self, args: Mapping[str, Any]) -> Backoff:
        options = dict(args.get("backoff") or {})
        unknown = set(options) - BACKOFF_FIELDS
        if unknown:
            raise SpecError(f"backoff: unknown fields {sorted(unknown)}")
        return Backoff(
            base_s=_positive(options, "base_s", BACKOFF_BASE_S),
            cap_s=_positive(options, "cap_s", BACKOFF_CAP_S),
            jitter=min(1.0, float(options.get("jitter", BACKOFF_JITTER))),
            reset_after_s=_positive(options, "reset_after_s", BACKOFF_RESET_AFTER_S),
        )


def _positive(args: Mapping[str, Any], key: str, default: float) -> float:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SpecError(f"{key} must be a positive number, got {value!r}")
    return float(value)


def parse_spec(args: Mapping[str, Any], run_dir: Path) -> StreamSpec:
    """Raises HostileNameError for a bad name, SpecError or TransportConfigError otherwise."""
    vm = validate_name("vm", args.get("vm"))
    host = VmHost(
        vm=vm,
        host=args.get("host", 0),
        role=Role(args.get("role", Role.WORKER)),
        address=args.get("address", vm),
        zone=args.get("zone", ""),
        hosts_in_vm=args.get("hosts_in_vm", 1),
    )
    container = validate_name("container", args.get("container"))
    transport = transport_from_args(args.get("transport") or {})
    output = Path(args.get("output") or host.log_path)
    max_line = int(_positive(args, "max_line_bytes", MAX_LINE_BYTES))
    if max_line < MIN_LINE_BYTES:
        raise SpecError(f"max_line_bytes must be at least {MIN_LINE_BYTES}")
    return StreamSpec(
        host=host,
        container=container,
        transport=transport,
        output=output if output.is_absolute() else run_dir / output,
        max_line_bytes=max_line,
        max_bytes=int(_positive(args, "max_bytes", MAX_BYTES)),
        stale_after_s=_positive(args, "stale_after_s", STALE_AFTER_S),
        progress_interval_s=_positive(args, "progress_interval_s", PROGRESS_INTERVAL_S),
        fsync_interval_s=_positive(args, "fsync_interval_s", FSYNC_INTERVAL_S),
        read_chunk_bytes=int(_positive(args, "read_chunk_bytes", READ_CHUNK_BYTES)),
    )
