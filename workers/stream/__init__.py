"""The stream child: follows one container log and appends it, one JSON record per line.

Entry point `workers.stream:main` (forwarded to `workers.stream.child.main`). Modules,
one concept each:
- `child`       the loop: connect, read, write, reconnect with backoff, stop; stats
- `connection`  one follower process: start, read its pipes, end it and its group
- `framing`     bytes -> complete lines, with bounded memory and truncation
- `records`     lines -> JSON records (the hot path), resume dedupe and gap detection
- `outfile`     the per-host file: append-only, locked, last record recovered on start
- `timestamps`  docker's RFC 3339 timestamps, normalised to one comparable form
- `backoff`     capped exponential backoff with jitter (pure)
- `spec`        the child's arguments, validated
"""

from typing import Any


def main(ctx: Any) -> int:
    # Imported on call, not at package import: `workers.transports` imports
    # `workers.stream.timestamps`, which would otherwise import this package's child
    # module (and with it `workers.transports`) half-way through its own import.
    from workers.stream.child import main as child_main

    return child_main(ctx)
