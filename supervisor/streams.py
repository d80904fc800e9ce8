"""Which VM hosts have a stream child: the parent's half of discovery.

The discovery child sends the full set of hosts it sees; this module turns each set into
stream children. A new host gets a stream at once (within the loop's next wake). A host
missing from a listing is not stopped at once: discovery can flap while a VM reboots or
the controller restarts, and a stream that is stopped and started again costs a
reconnect. Only a host gone for longer than `gone_grace_s` has its stream stopped; its
file stays. A host that comes back after that gets its stream again, appending to the
same file.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from common.deadline import Clock
from supervisor.arbiter import Supervisor
from supervisor.children import ChildRecord, ChildSpec

Host = Mapping[str, Any]


def stream_name(host: Host) -> str:
    """`stream:<vm>` for a one-host VM, `stream:<vm>:<host>` for a host of a multi-host VM,
    `stream:controller@<vm>` for the controller.

    A VM name never holds "@" (workers.hosts.NAME_PATTERN), so a worker whose VM is named
    like the controller's gets a stream of its own instead of shadowing the controller's.
    """
    if host.get("role") == "controller":
        return f"stream:controller@{host['vm']}"
    if int(host.get("hosts_in_vm", 1)) > 1:
        return f"stream:{host['vm']}:{host['host']}"
    return f"stream:{host['vm']}"


@dataclass
class StreamManager:
    supervisor: Supervisor
    spec_for: Callable[[Host], ChildSpec]
    gone_grace_s: float
    clock: Clock
    gone_since: dict[str, float | None] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)

    def update(self, hosts: list[Host]) -> None:
        now = self.clock()
        present = {stream_name(h): h for h in hosts}
        for name, host in present.items():
            self.gone_since[name] = None
            self.hosts[name] = host
            record = self.supervisor.children.get(name)
            if record is None:
                self.supervisor.add(self.spec_for(host))
            elif name in self.retired and record.finished:
                self.retired.discard(name)
                self.supervisor.log.info("host_returned", child=name)
                self.supervisor.respawn(record)
        for name, since in self.gone_since.items():
            if name not in present and since is None:
                self.gone_since[name] = now
                self.supervisor.log.info("host_gone", child=name, grace_s=self.gone_grace_s)

    def expire(self) -> None:
        """Stop the streams of hosts gone for longer than the grace."""
        now = self.clock()
        expired: list[ChildRecord] = []
        for name, since in self.gone_since.items():
            record = self.supervisor.children.get(name)
            if since is not None and now - since >= self.gone_grace_s and record is not None and not record.finished:
                expired.append(record)
        if expired:
            for record in expired:
                self.retired.add(record.name)
                self.supervisor.log.info("stream_retired", child=record.name)
            self.supervisor.stop_children(expired)

    def tick(self) -> float | None:
        """Retire what is due; return the seconds until the next host is due, if any."""
        self.expire()
        now = self.clock()
        pending = [
            since + self.gone_grace_s - now
            for name, since in self.gone_since.items()
            if since is not None and name not in self.retired
        ]
        return max(0.0, min(pending)) if pending else None

    def records(self) -> list[ChildRecord]:
        return [r for name, r in self.supervisor.children.items() if name in self.gone_since]
