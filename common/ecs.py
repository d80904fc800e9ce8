"""Our log events under Elastic Common Schema (ECS) field names, for log pipelines that want them.

One pure function, `to_ecs`, maps an event dict as `common.logs` builds it (see
docs/log-schema.md) to a flat dict of dotted ECS names. Flat, not nested: Elasticsearch
and the ecs-logging spec accept dotted keys, and a flat dict keeps `common.logs`'
line cap working unchanged (it shortens top-level string fields).

Choices worth knowing (docs/log-pipeline.md has the whole table):
- `@timestamp`, `log.level`, `message` come first, as the ecs-logging spec asks.
- `message` is the event name: our events are facts with fields, not sentences.
- `service.name` is the product (`iris-smoke`), constant across processes so one
  dashboard sees them all; our `role` (supervisor, stream, canary) is `labels.role`.
- `run_id` is `labels.run_id`: ECS `trace.id` must be 32 hex digits, and a run is not a
  trace. Keyword-like identifiers go to `labels.*` as strings (ECS labels are keywords).
- A pid the event is *about* (`child_pid`) is not `process.pid` (the process that logged);
  it and every field ECS has no name for go under our own namespace `iris_smoke.*`, as
  ECS recommends for custom fields.
- `duration_s` becomes `event.duration` in nanoseconds; `outcome` becomes
  `event.outcome` (success/failure/unknown) and stays verbatim in `iris_smoke.outcome`.
- `host.name` is the machine that logged (the bastion); our `host` field is a worker
  index and stays `labels.host`. `service.version` is the installed iris-smoke's.
- An empty `error` (a passing test's `error: ""`) is left out: an `error.message` that is
  present makes Kibana and the ECS error views count the event as an error.
"""

import importlib.metadata
import socket
from collections.abc import Mapping

ECS_VERSION = "8.11.0"
SERVICE_NAME = "iris-smoke"
DATASET = "iris_smoke.events"

# Our field -> its ECS name, when the meaning is the same.
RENAMED = {
    "timestamp": "@timestamp",
    "level": "log.level",
    "event": "event.action",
    "pid": "process.pid",
    "reason": "event.reason",
    "exception": "error.stack_trace",
    "error": "error.message",
}
# Identifiers that become ECS labels (keyword strings).
LABELS = ("run_id", "role", "child", "child_role", "run", "vm", "host", "phase", "test")
CUSTOM_NAMESPACE = "iris_smoke"

# Once per process: neither changes while it runs.
HOST_NAME = socket.gethostname()
try:
    SERVICE_VERSION = importlib.metadata.version("iris-smoke")
except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
    SERVICE_VERSION = "0+unknown"

_OUTCOMES = {"passed": "success", "ok": "success", "failed": "failure", "error": "failure", "timeout": "failure"}


def to_ecs(event: Mapping[str, object]) -> dict[str, object]:
    """A new dict with ECS names; the input is not modified. Never raises on odd values."""
    out: dict[str, object] = {}
    for key, name in (("timestamp", "@timestamp"), ("level", "log.level"), ("event", "message")):
        if event.get(key) is not None:
            out[name] = event[key]
    out |= {
        "ecs.version": ECS_VERSION,
        "service.name": SERVICE_NAME,
        "service.version": SERVICE_VERSION,
        "host.name": HOST_NAME,
        "event.dataset": DATASET,
    }
    for key, value in event.items():
        if key == "error" and value in ("", None):
            continue
        if key in RENAMED:
            out[RENAMED[key]] = value
        elif key in LABELS:
            if value is not None:
                out[f"labels.{key}"] = str(value)
        elif key == "duration_s" and isinstance(value, int | float) and not isinstance(value, bool):
            out["event.duration"] = int(value * 1e9)
            out[f"{CUSTOM_NAMESPACE}.duration_s"] = value
        elif key == "outcome":
            out["event.outcome"] = _OUTCOMES.get(str(value), "unknown")
            out[f"{CUSTOM_NAMESPACE}.outcome"] = value
        else:
            out[f"{CUSTOM_NAMESPACE}.{key}"] = value
    return out
