"""The controller's endpoint registry: services its tasks register, as Iris's controller keeps them.

An endpoint belongs to a task and lives while the task runs (Iris ties each to its task's
row): registering for a task that is not running is refused, and a listing leaves out, and
forgets, those whose task has ended. Names are the registrant's (`<job name>/<endpoint>`).
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass

MAX_ENDPOINTS = 10_000  # a registry is for a handful per job; a runaway task is refused past it


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    name: str
    address: str
    task_id: str  # "<job_id>/<task_index>"


class EndpointRegistry:
    def __init__(self) -> None:
        self._by_id: dict[str, Endpoint] = {}
        self._ids = itertools.count(1)

    def add(self, name: str, address: str, task_id: str) -> Endpoint | None:
        """The endpoint, registered; None when the registry is full."""
        if len(self._by_id) >= MAX_ENDPOINTS:
            return None
        endpoint = Endpoint(f"ep-{next(self._ids)}", name, address, task_id)
        self._by_id[endpoint.endpoint_id] = endpoint
        return endpoint

    def listed(self, prefix: str, running: Callable[[str], bool]) -> list[Endpoint]:
        """Those named under `prefix` whose task still runs; the others are dropped."""
        for gone in [e for e in self._by_id.values() if not running(e.task_id)]:
            del self._by_id[gone.endpoint_id]
        return sorted((e for e in self._by_id.values() if e.name.startswith(prefix)), key=lambda e: e.name)
