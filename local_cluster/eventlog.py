"""One call that records an event twice: as a structlog event (iris-smoke's own events)
and as a line of this process's container log (what `docker logs` on a real VM would
show, and what the smoke test's log streams collect).
"""

import traceback
from typing import Any

from common import logs
from local_cluster.container_log import ContainerLogWriter


def _value(value: Any) -> str:
    text = str(value)
    return repr(text) if (not text or " " in text or "\n" in text) else text


class EventLog:
    def __init__(self, container: ContainerLogWriter | None) -> None:
        self._container = container
        self._log = logs.get_logger()

    def __call__(self, event: str, **fields: Any) -> None:
        self._log.info(event, **fields)
        self._write("I", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log.warning(event, **fields)
        self._write("W", event, fields)

    def log_exception(self, event: str) -> None:
        """For the one catch-all at the top of a thread: the traceback goes to both logs."""
        self._log.error(event, exc_info=True)
        self._write("E", event, {"traceback": traceback.format_exc()})

    def _write(self, level: str, event: str, fields: dict[str, object]) -> None:
        if self._container is not None:
            details = " ".join(f"{k}={_value(v)}" for k, v in fields.items())
            self._container.write_text(f"{level} {event} {details}".rstrip())
